"""Static conformance checks of this code against libraries that cannot run here.

TensorFlow 1.15 (Python 3.7) and Huawei's ``npu_bridge`` cannot be installed beside TensorFlow
2.21, so their Python sources are read instead: :mod:`.summary` turns a module's source into a
summary (names, classes, signatures), :mod:`.library` answers questions about a whole library
from those summaries, and :mod:`.project` walks this project's code as TensorFlow 1.15 would run
it and reports every name, attribute and keyword the library lacks.
"""
