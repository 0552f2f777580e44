"""BraTS case folders: layouts, discovery, case lists and label conventions.

Three on-disk layouts are recognised (see docs/spec.md):

* BraTS 2017/2018 and 2019-2021: ``<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz``
* BraTS 2023+ glioma: ``<case>/<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz``

Uncompressed ``.nii`` files are accepted too. Internally labels always follow the 2017
convention (enhancing tumour = 4); BraTS 2023 label maps (enhancing tumour = 3) are mapped on
load and back on save.
"""
import os
import sys
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence

from densenet3d_keras.core.labels import MODALITIES

NIFTI_EXTENSIONS = (".nii.gz", ".nii")
CORRECTED_SUFFIX = "_corrected"


class Layout(object):
    """How one BraTS release names the files inside a case folder."""

    def __init__(self, name, separator, file_keys, label_convention):
        self.name = name
        self.separator = separator
        self.file_keys = dict(file_keys)  # modality (or "seg") -> key used in file names
        self.label_convention = label_convention

    def stem(self, case_prefix, key):
        """File name without extension for ``key`` (a modality name or ``"seg"``)."""
        return "%s%s%s" % (case_prefix, self.separator, self.file_keys[key])

    def __repr__(self):
        return "Layout(%r)" % self.name


LAYOUTS = OrderedDict([
    ("brats2017", Layout("brats2017", "_",
                         {"flair": "flair", "t2": "t2", "t1": "t1", "t1ce": "t1ce", "seg": "seg"},
                         "brats2017")),
    ("brats2023", Layout("brats2023", "-",
                         {"flair": "t2f", "t2": "t2w", "t1": "t1n", "t1ce": "t1c", "seg": "seg"},
                         "brats2023")),
])


class Case(object):
    """One patient: where its four modalities and (optional) label map are.

    Args:
        case_id: folder name, e.g. ``Brats17_TCIA_296_1``.
        directory: path of the case folder.
        images: modality name (``flair``, ``t2``, ``t1``, ``t1ce``) -> NIfTI path.
        label: path of the label map, or ``None`` for unlabelled (test) cases.
        layout: the :class:`Layout` the files follow.
    """

    def __init__(self, case_id, directory, images, label, layout):
        self.case_id = case_id
        self.directory = directory
        self.images = OrderedDict((m, images[m]) for m in MODALITIES)
        self.label = label
        self.layout = layout

    @property
    def label_convention(self):
        return self.layout.label_convention

    def corrected(self):
        """The same case reading the N4-corrected files written beside the originals.

        Raises:
            FileNotFoundError: a corrected file is missing (run the N4 command first).
        """
        images = OrderedDict()
        for modality, path in self.images.items():
            corrected = corrected_path(path)
            if not os.path.isfile(corrected):
                raise FileNotFoundError(
                    "N4-corrected file missing: %s (run `python -m generators.n4 <root>` first "
                    "or train with -nc false)" % corrected)
            images[modality] = corrected
        return Case(self.case_id, self.directory, images, self.label, self.layout)

    def __repr__(self):
        return "Case(%r, layout=%s, labelled=%s)" % (self.case_id, self.layout.name, self.label is not None)


def split_nifti_extension(path):
    """Split ``path`` into (stem, extension) for ``.nii.gz`` / ``.nii``; extension '' otherwise."""
    for extension in NIFTI_EXTENSIONS:
        if path.endswith(extension):
            return path[: -len(extension)], extension
    return path, ""


def corrected_path(path):
    """Path of the N4-corrected twin of a modality file: ``<stem>_corrected.nii.gz``."""
    stem, _ = split_nifti_extension(path)
    return stem + CORRECTED_SUFFIX + ".nii.gz"


def _find_file(directory, stem):
    for extension in NIFTI_EXTENSIONS:
        candidate = os.path.join(directory, stem + extension)
        if os.path.isfile(candidate):
            return candidate
    return None


def _flair_prefixes(names, layout):
    """Case prefixes of the files in ``names`` that are a flair file of ``layout``."""
    tail = layout.separator + layout.file_keys["flair"]
    prefixes = set()
    for name in names:
        stem, extension = split_nifti_extension(name)
        if extension and stem.endswith(tail):
            prefixes.add(stem[: -len(tail)])
    return prefixes


def _detect(directory):
    """Return (layout, case_prefix) for a case folder, or (None, None)."""
    folder = os.path.basename(os.path.normpath(directory))
    for layout in LAYOUTS.values():
        if _find_file(directory, layout.stem(folder, "flair")):
            return layout, folder
    # Files whose prefix differs from the folder name: accept one unique prefix.
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return None, None
    for layout in LAYOUTS.values():
        prefixes = _flair_prefixes(names, layout)
        if len(prefixes) == 1:
            return layout, prefixes.pop()
    return None, None


def _wrongly_cased(directory, stem):
    """Files in ``directory`` named like ``stem`` + a NIfTI extension but for letter case."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    wanted = [(stem + extension).lower() for extension in NIFTI_EXTENSIONS]
    return [name for name in names if name.lower() in wanted
            and name not in (stem + extension for extension in NIFTI_EXTENSIONS)]


def _case_hint(directory, stem):
    """``"; found X_FLAIR.nii.gz (file names are case-sensitive)"`` or ``""``."""
    found = _wrongly_cased(directory, stem)
    if not found:
        return ""
    return "; found %s (file names are case-sensitive)" % ", ".join(found)


def _missing_flair_message(directory):
    """One line saying why ``directory`` has no usable flair file."""
    case_id = os.path.basename(os.path.normpath(directory))
    expected = [layout.stem(case_id, "flair") + ".nii.gz" for layout in LAYOUTS.values()]
    message = "case folder %s has no flair file (expected %s)" % (directory, " or ".join(expected))
    for layout in LAYOUTS.values():
        hint = _case_hint(directory, layout.stem(case_id, "flair"))
        if hint:
            return message + hint
    try:
        names = sorted(os.listdir(directory))
    except OSError as error:
        return "cannot read case folder %s: %s" % (directory, error.strerror or error)
    # A flair file with another case prefix, in any letter case.
    lowered = [name.lower() for name in names]
    for layout in LAYOUTS.values():
        prefixes = _flair_prefixes(names, layout)
        if len(prefixes) > 1:
            return message + "; found flair files of several cases: %s" % ", ".join(
                sorted(p + layout.separator + layout.file_keys["flair"] for p in prefixes))
        tail = (layout.separator + layout.file_keys["flair"]).lower()
        found = [name for name, low in zip(names, lowered)
                 if split_nifti_extension(low)[1] and split_nifti_extension(low)[0].endswith(tail)]
        if found:
            return message + "; found %s (file names are case-sensitive)" % ", ".join(found)
    return message


def load_case(directory, require_label=False):
    # type: (str, bool) -> Case
    """Describe the case in ``directory``.

    Raises:
        FileNotFoundError: the folder, a modality, or (with ``require_label``) the label map is
            missing; the message names the missing file.
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError("case folder not found: %s" % directory)
    layout, prefix = _detect(directory)
    case_id = os.path.basename(os.path.normpath(directory))
    if layout is None:
        raise FileNotFoundError(_missing_flair_message(directory))
    images = {}
    for modality in MODALITIES:
        stem = layout.stem(prefix, modality)
        path = _find_file(directory, stem)
        if path is None:
            raise FileNotFoundError("missing %s file for case %s: %s.nii.gz%s"
                                    % (modality, case_id, os.path.join(directory, stem),
                                       _case_hint(directory, stem)))
        images[modality] = path
    label = _find_file(directory, layout.stem(prefix, "seg"))
    if label is None and require_label:
        stem = layout.stem(prefix, "seg")
        raise FileNotFoundError("missing label map for case %s: %s.nii.gz%s"
                                % (case_id, os.path.join(directory, stem),
                                   _case_hint(directory, stem)))
    return Case(case_id, directory, images, label, layout)


def read_case_list(path):
    # type: (str) -> List[str]
    """Read a case list (one folder name per line; blank lines and ``#`` comments skipped).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the list is empty, or names a case more than once (a case listed twice
            would be trained on twice per epoch, or weigh twice in a mean score).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError("case list not found: %s" % path)
    names = []
    with open(path) as handle:
        for line in handle:
            name = line.strip()
            if name and not name.startswith("#"):
                names.append(name)
    if not names:
        raise ValueError("case list %s is empty" % path)
    keys = [os.path.normpath(name) for name in names]
    twice = sorted(set(name for name, key in zip(names, keys) if keys.count(key) > 1))
    if twice:
        raise ValueError("case list %s names a case more than once: %s" % (path, ", ".join(twice)))
    return names


def _report_skip(folder, reason):
    sys.stderr.write("skipped incomplete case folder: %s\n" % reason)
    sys.stderr.flush()


def discover_cases(root, names=None, require_label=False, skip_incomplete=False, on_skip=None):
    # type: (str, Optional[Sequence[str]], bool, bool, Optional[Callable[[str, str], None]]) -> List[Case]
    """All cases under a dataset root, or those named in ``names``, in order.

    Without ``names`` every sub-folder of ``root`` is a case (hidden folders, whose names
    start with ``.``, and plain files are not), and each must be complete: four modalities
    (and a label map with ``require_label``). An incomplete folder is an error unless
    ``skip_incomplete``; then it is reported through ``on_skip`` and left out. Nothing is
    ever dropped silently.

    Args:
        root: folder holding one sub-folder per case.
        names: case folder names to take (e.g. from :func:`read_case_list`); ``None`` takes
            every sub-folder, sorted by name. A named case must exist and be complete,
            whatever ``skip_incomplete`` says.
        require_label: a case needs a label map.
        skip_incomplete: leave out (and report) incomplete folders instead of raising.
        on_skip: called as ``on_skip(folder, reason)`` for each skipped folder; default: one
            line ``skipped incomplete case folder: <reason>`` on stderr (the reason names the
            folder).

    Raises:
        FileNotFoundError: the root, a named case or a file of a case is missing (the message
            names the folder and the file), or no complete case was found.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError("dataset root not found: %s" % root)
    if names is not None:
        return [load_case(os.path.join(root, name), require_label=require_label) for name in names]
    report = on_skip or _report_skip
    cases = []
    skipped = 0
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        try:
            cases.append(load_case(path, require_label=require_label))
        except FileNotFoundError as error:
            if not skip_incomplete:
                raise FileNotFoundError("%s (--skip-incomplete skips incomplete case folders)"
                                        % error)
            skipped += 1
            report(path, str(error))
    if not cases:
        raise FileNotFoundError("no %sBraTS case folders found in %s%s"
                                % ("complete " if skipped else "", root,
                                   " (%d incomplete skipped)" % skipped if skipped else ""))
    return cases


def check_outside_root(path, root, what):
    """Refuse an output folder inside a dataset root: every folder there is read as a case, so
    it would stop the next command on that root ("case folder ... has no flair file").

    Args:
        path: the output folder (need not exist).
        root: the dataset root.
        what: the output's name in the message, e.g. ``"output folder (-o)"``.

    Raises:
        ValueError: ``path`` is ``root`` or lies inside it.
    """
    if not path or not root:
        return
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise ValueError("%s %s is inside the dataset root %s, where every folder is read as a "
                         "case; choose a folder outside it" % (what, path, root))


def resolve_case_list(root, case_list=None, default_name="train.txt"):
    # type: (str, Optional[str], str) -> Optional[List[str]]
    """Case names for a run: the given list file, else ``<root>/<default_name>``, else all.

    A relative ``case_list`` that does not exist as given is looked up inside ``root``.
    """
    if case_list:
        if not os.path.isfile(case_list) and os.path.isfile(os.path.join(root, case_list)):
            case_list = os.path.join(root, case_list)
        return read_case_list(case_list)
    if default_name and os.path.isfile(os.path.join(root, default_name)):
        return read_case_list(os.path.join(root, default_name))
    return None
