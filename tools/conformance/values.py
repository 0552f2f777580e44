"""What the project walk (:mod:`.project`) knows about a value.

- :data:`UNKNOWN`: not followed, possibly a library object (attributes are checked against
  every name the library defines, see :mod:`.project`).
- :data:`FOREIGN`: from elsewhere (numpy, the standard library, this project's own data): not
  checked.
- :class:`Const`: a constant the walk can fold (``IS_TF1``, ``None``, a literal).
- :class:`Lib` / :class:`Instance` / :class:`Bound`: a library module, class or function; an
  instance of a library class; a library method bound to its object.
- :class:`Repeated` / :class:`Mapping`: a repeated or map field of a protobuf message.
- :class:`Function` / :class:`Method` / :class:`Class` / :class:`Objects` / :class:`Super` /
  :class:`Module`: this project's own.
- :class:`Tuple` / :class:`Dict` / :class:`Seq`: containers whose items are followed.
"""


class Value(object):
    """Base class; values compare by their class and fields."""

    def _key(self):
        return ()

    def __eq__(self, other):
        return type(self) is type(other) and self._key() == other._key()

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((type(self).__name__,) + tuple(id(k) if isinstance(k, list) else k for k in self._key()))

    def __repr__(self):
        return "%s%r" % (type(self).__name__, self._key())


class _Unknown(Value):
    pass


class _Foreign(Value):
    pass


UNKNOWN = _Unknown()
FOREIGN = _Foreign()


class Const(Value):
    def __init__(self, value):
        self.value = value

    def _key(self):
        return (repr(self.value),)


class Lib(Value):
    """A library module, class or function: ``ref`` as in :mod:`.library`, ``shown`` how the
    project's code names it (``tf.compat.v1.Session``)."""

    def __init__(self, ref, shown):
        self.ref, self.shown = ref, shown

    def _key(self):
        return (self.ref,)


class Instance(Value):
    """An instance of the library class ``ref``."""

    def __init__(self, ref, shown):
        self.ref, self.shown = ref, shown

    def _key(self):
        return (self.ref,)


class Bound(Value):
    """Library function ``ref`` whose first ``skip`` parameters are already bound (a method)."""

    def __init__(self, ref, shown, skip):
        self.ref, self.shown, self.skip = ref, shown, skip

    def _key(self):
        return (self.ref, self.skip)


class Repeated(Value):
    """A repeated message field: ``add()``, items and iteration give ``item``."""

    def __init__(self, item):
        self.item = item

    def _key(self):
        return (self.item,)


class Mapping(Value):
    """A protobuf map field: ``field[key]`` gives ``item``."""

    def __init__(self, item):
        self.item = item

    def _key(self):
        return (self.item,)


class Module(Value):
    def __init__(self, name):
        self.name = name

    def _key(self):
        return (self.name,)


class Function(Value):
    """A function of the project (``node``: its ``def`` or ``lambda``; ``owner``: its class)."""

    def __init__(self, node, module, env, owner=None, kind="method"):
        self.node, self.module, self.env, self.owner, self.kind = node, module, env, owner, kind

    def _key(self):
        return (id(self.node),)


class Class(Value):
    """A class of the project: ``bases`` are values, ``members`` what its body binds, ``fields``
    what its methods set on ``self``."""

    def __init__(self, node, module, bases):
        self.node, self.module, self.bases = node, module, bases
        self.members, self.fields = {}, {}

    def _key(self):
        return (id(self.node),)


class Objects(Value):
    """An instance of one of the project classes ``classes`` (a frozenset)."""

    def __init__(self, classes):
        self.classes = frozenset(classes)

    def _key(self):
        return (tuple(sorted(id(c.node) for c in self.classes)),)


class Method(Value):
    """Project function ``function`` bound to ``owner`` (an :class:`Objects` or a :class:`Class`)."""

    def __init__(self, function, owner):
        self.function, self.owner = function, owner

    def _key(self):
        return (self.function, self.owner)


class Alternatives(Value):
    """One of several callables (a method that subclasses override): calling it calls each."""

    def __init__(self, items):
        self.items = frozenset(items)

    def _key(self):
        return (tuple(sorted(hash(item) for item in self.items)),)


class Super(Value):
    """``super()`` in a method of project class ``owner``."""

    def __init__(self, owner):
        self.owner = owner

    def _key(self):
        return (id(self.owner.node),)


class Tuple(Value):
    def __init__(self, items):
        self.items = list(items)

    def _key(self):
        return tuple(self.items)


class Seq(Value):
    """A list or set whose items are all like ``item``."""

    def __init__(self, item):
        self.item = item

    def _key(self):
        return (self.item,)


class Dict(Value):
    """A dict with string keys ``keys`` (name -> value); ``keys`` is ``None`` when not known."""

    def __init__(self, keys):
        self.keys = keys

    def _key(self):
        return (tuple(sorted(self.keys)) if self.keys is not None else None,)


def merge(first, second):
    """What a value is that is ``first`` on one path and ``second`` on another.

    Hopeful: a known object wins over ``None``, :data:`UNKNOWN` and :data:`FOREIGN`, since the
    walk wants to check what it can; instances of several project classes become
    :class:`Objects`; anything else that disagrees is :data:`UNKNOWN`.
    """
    if first is None or second is None:
        return second if first is None else first
    if first == second:
        return first
    for one, other in ((first, second), (second, first)):
        if one == Const(None) and not isinstance(other, Const):
            return other
    if isinstance(first, Const) or isinstance(second, Const):
        return UNKNOWN  # never fold a value that may differ
    for one, other in ((first, second), (second, first)):
        if one in (UNKNOWN, FOREIGN):
            return UNKNOWN if other in (UNKNOWN, FOREIGN) else other
    if isinstance(first, Objects) and isinstance(second, Objects):
        return Objects(first.classes | second.classes)
    callables = (Function, Method, Lib, Bound, Class, Alternatives)
    if isinstance(first, callables) and isinstance(second, callables):
        items = set()
        for one in (first, second):
            items |= one.items if isinstance(one, Alternatives) else {one}
        return Alternatives(items)
    if isinstance(first, Tuple) and isinstance(second, Tuple) and len(first.items) == len(second.items):
        return Tuple(merge(a, b) for a, b in zip(first.items, second.items))
    if isinstance(first, Dict) and isinstance(second, Dict):
        if first.keys is None or second.keys is None:
            return Dict(None)
        keys = dict(first.keys)
        for name, value in second.keys.items():
            keys[name] = merge(keys.get(name), value)
        return Dict(keys)
    return UNKNOWN
