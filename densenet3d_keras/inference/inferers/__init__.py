"""Inferers: one object per way of segmenting a case, behind one small interface.

An inferer is made from the resolved run (:func:`~densenet3d_keras.inference.inferers.registry.build_inferer`),
then :meth:`~densenet3d_keras.inference.inferers.base.Inferer.load` loads what it needs (once,
before any case), :meth:`~densenet3d_keras.inference.inferers.base.Inferer.segment` segments
one case's volumes, and :meth:`~densenet3d_keras.inference.inferers.base.Inferer.describe`
names what it does (for the files' headers). The prediction pipeline only calls these.

- :mod:`~densenet3d_keras.inference.inferers.patch`: the reference's 38^3 sliding windows;
- :mod:`~densenet3d_keras.inference.inferers.tiles`: the fully convolutional network over tiles;
- :mod:`~densenet3d_keras.inference.inferers.slabs`: the box streamed in slabs;
- :mod:`~densenet3d_keras.inference.inferers.engine`: tiles run by OpenVINO or ONNX Runtime
  (``--engine``);
- :mod:`~densenet3d_keras.inference.inferers.averaged`: test-time mirroring and ensembles, an
  inferer wrapping the others of one method;
- :mod:`~densenet3d_keras.inference.inferers.registry`: ``--method`` name -> inferer.

A new backend (another runtime for the network) is a new module here with a
:class:`~densenet3d_keras.inference.inferers.base.PredictorInferer` subclass, and its line in
:data:`~densenet3d_keras.inference.inferers.registry.METHODS`.
"""
