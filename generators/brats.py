"""BraTS case folders: layouts, discovery, case lists and label conventions.

Three on-disk layouts are recognised (see docs/spec.md):

* BraTS 2017/2018 and 2019-2021: ``<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz``
* BraTS 2023+ glioma: ``<case>/<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz``

Uncompressed ``.nii`` files are accepted too. Internally labels always follow the 2017
convention (enhancing tumour = 4); BraTS 2023 label maps (enhancing tumour = 3) are mapped on
load and back on save.
"""
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

from densenet3d_keras.core.labels import (LABEL_CONVENTIONS, LABELS_2017, LABELS_2023,  # noqa: F401
                                          MODALITIES, NUM_CLASSES, REGIONS, from_internal_labels,
                                          labels_for_convention, region_mask, to_internal_labels)

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
        tail = layout.separator + layout.file_keys["flair"]
        prefixes = set()
        for name in names:
            stem, extension = split_nifti_extension(name)
            if extension and stem.endswith(tail):
                prefixes.add(stem[: -len(tail)])
        if len(prefixes) == 1:
            return layout, prefixes.pop()
    return None, None


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
        raise FileNotFoundError(
            "no BraTS flair file in %s (expected %s_flair.nii.gz or %s-t2f.nii.gz)"
            % (directory, case_id, case_id))
    images = {}
    for modality in MODALITIES:
        path = _find_file(directory, layout.stem(prefix, modality))
        if path is None:
            raise FileNotFoundError("missing %s file for case %s: %s.nii.gz"
                                    % (modality, case_id,
                                       os.path.join(directory, layout.stem(prefix, modality))))
        images[modality] = path
    label = _find_file(directory, layout.stem(prefix, "seg"))
    if label is None and require_label:
        raise FileNotFoundError("missing label map for case %s: %s.nii.gz"
                                % (case_id, os.path.join(directory, layout.stem(prefix, "seg"))))
    return Case(case_id, directory, images, label, layout)


def read_case_list(path):
    # type: (str) -> List[str]
    """Read a case list (one folder name per line; blank lines and ``#`` comments skipped)."""
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
    return names


def discover_cases(root, names=None, require_label=False):
    # type: (str, Optional[Sequence[str]], bool) -> List[Case]
    """All cases under a dataset root, or those named in ``names``, in order.

    Args:
        root: folder holding one sub-folder per case.
        names: case folder names to take (e.g. from :func:`read_case_list`); ``None`` takes
            every sub-folder that holds a BraTS flair file, sorted by name.
        require_label: raise if a case has no label map.

    Raises:
        FileNotFoundError: the root or a named case is missing, or no case was found.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError("dataset root not found: %s" % root)
    if names is None:
        names = []
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            if os.path.isdir(path) and not name.startswith(".") and _detect(path)[0] is not None:
                names.append(name)
        if not names:
            raise FileNotFoundError("no BraTS case folders found in %s" % root)
    return [load_case(os.path.join(root, name), require_label=require_label) for name in names]


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
