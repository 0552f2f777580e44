"""Quality-control pictures: ground truth and prediction outlined on the flair image.

One PNG per case: three panels (axial, coronal, sagittal) through the tumour centre, the
ground truth in the top row and the prediction in the bottom row. Each label is shaded and
outlined in the colour BraTS papers commonly use: necrotic / non-enhancing core (label 1) red,
edema (label 2) green, enhancing tumour (internal label 4, 3 in BraTS 2023 files) yellow. The
prediction row also carries the ground-truth whole-tumour outline as a dashed cyan line.
(Two rows rather than solid-vs-dashed outlines on one image: neighbouring labels share their
boundaries, so on a single image one label's outline hides the other's, e.g. a necrotic core
inside an enhancing rim.)

Arrays are indexed ``(x, y, z)``; :func:`to_canonical` reorders them to RAS first so that
panels show anterior / superior up and the subject's left on the image's left (neurological
convention). Rendering uses matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``,
no pyplot), so it needs no display and leaves the process-wide pyplot backend alone.
"""
from collections import OrderedDict

import numpy as np
from scipy import ndimage

from densenet3d_keras.core.fileio import atomic_output

#: Internal label -> (name, colour) of its outline.
LABEL_STYLES = OrderedDict([
    (1, ("necrotic / non-enhancing core (1)", "#ff2020")),
    (2, ("edema (2)", "#20e020")),
    (4, ("enhancing tumour (4; 3 in BraTS 2023)", "#ffff00")),
])
FILL_ALPHA = 0.35
#: Colour and line style of the ground-truth whole-tumour outline on the prediction row.
REFERENCE_STYLE = ("#00e5ff", "dashed")

#: Panel name -> (axis the slice is taken along, horizontal axis, vertical axis), RAS indices.
VIEWS = OrderedDict([
    ("axial", (2, 0, 1)),
    ("coronal", (1, 0, 2)),
    ("sagittal", (0, 1, 2)),
])


def to_canonical(arrays, affine, spacing):
    """Reorder volumes from their voxel order to RAS (closest canonical orientation).

    Args:
        arrays: 3-D arrays on one grid.
        affine: the 4x4 voxel-to-world matrix of that grid.
        spacing: the voxel size per voxel axis.

    Returns:
        (list of reoriented arrays, spacing permuted to match).
    """
    import nibabel as nib

    ornt = nib.orientations.io_orientation(np.asarray(affine))
    out = [nib.orientations.apply_orientation(np.asarray(a), ornt) for a in arrays]
    order = [int(axis) for axis in ornt[:, 0]]
    new_spacing = [0.0, 0.0, 0.0]
    for old_axis, new_axis in enumerate(order):
        new_spacing[new_axis] = float(spacing[old_axis])
    return out, tuple(new_spacing)


def tumour_centre(gt_label, pred_label):
    """Voxel where the panels cross: centre of mass of the ground-truth whole tumour.

    Args:
        gt_label: 3-D internal label map of the ground truth.
        pred_label: 3-D internal label map of the prediction.

    Returns:
        Tuple of 3 ints: the rounded centre of mass of ``gt_label > 0``, else of
        ``pred_label > 0`` when the ground truth is empty, else the volume centre.
    """
    for label in (gt_label, pred_label):
        mask = np.asarray(label) > 0
        if mask.any():
            centre = ndimage.center_of_mass(mask)
            return tuple(int(min(max(round(c), 0), n - 1)) for c, n in zip(centre, mask.shape))
    return tuple(int(n // 2) for n in np.shape(gt_label))


def _display_range(flair):
    values = flair[np.isfinite(flair) & (flair != 0)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [0.5, 99.5])
    if high <= low:
        high = low + 1.0
    return float(min(low, 0.0)), float(high)


def _contour(axes, mask, **style):
    """Outline a 2-D mask; a slice one pixel thick has no outline to draw (its shading shows)."""
    if min(mask.shape) >= 2:
        axes.contour(mask.astype(np.float32), levels=[0.5], **style)


def _draw_labels(axes, plane):
    """Shade and outline each label of a 2-D ``(horizontal, vertical)`` label slice."""
    from matplotlib.colors import to_rgba

    shade = np.zeros(plane.T.shape + (4,), np.float32)
    for value, (_, colour) in LABEL_STYLES.items():
        mask = plane.T == value
        if not mask.any():
            continue
        shade[mask] = to_rgba(colour, FILL_ALPHA)
        _contour(axes, mask, colors=[colour], linewidths=1.0)
    axes.imshow(shade, origin="lower", interpolation="nearest")


def write_overlay(path_png, flair, gt_label, pred_label, spacing, title):
    """Write a PNG of the flair with the ground truth (top row) and prediction (bottom row).

    Args:
        path_png: output file; written to a temporary name in the same folder, then renamed.
        flair: 3-D flair volume ``(x, y, z)`` (raw or normalised intensities).
        gt_label: 3-D internal label map of the ground truth, same shape.
        pred_label: 3-D internal label map of the prediction, same shape.
        spacing: voxel size in mm per axis; pixels are drawn with that aspect ratio.
        title: figure title, e.g. the case id and its Dice scores.

    Returns:
        ``path_png``.

    Raises:
        ValueError: the three volumes are not 3-D arrays of one shape.
        OSError: the file cannot be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    flair = np.asarray(flair, dtype=np.float32)
    gt_label = np.asarray(gt_label)
    pred_label = np.asarray(pred_label)
    if flair.ndim != 3 or flair.shape != gt_label.shape or flair.shape != pred_label.shape:
        raise ValueError("overlay needs three 3-D volumes of one shape, got flair %s, ground "
                         "truth %s, prediction %s" % (flair.shape, gt_label.shape, pred_label.shape))
    spacing = tuple(float(s) for s in spacing)
    centre = tumour_centre(gt_label, pred_label)
    vmin, vmax = _display_range(flair)
    reference_colour, reference_style = REFERENCE_STYLE

    figure = Figure(figsize=(12, 8.6), dpi=100)
    FigureCanvasAgg(figure)
    rows = (("ground truth", gt_label), ("prediction", pred_label))
    for row, (row_name, label) in enumerate(rows):
        for column, (view, (axis, horizontal, vertical)) in enumerate(VIEWS.items()):
            axes = figure.add_subplot(len(rows), len(VIEWS), row * len(VIEWS) + column + 1)
            take = [slice(None)] * 3
            take[axis] = centre[axis]
            take = tuple(take)
            # Indexing drops ``axis``; the other two keep their order (horizontal < vertical).
            axes.imshow(flair[take].T, cmap="gray", vmin=vmin, vmax=vmax, origin="lower",
                        interpolation="nearest")
            _draw_labels(axes, label[take])
            if label is pred_label:
                whole = (gt_label[take] > 0).T
                if whole.any():
                    _contour(axes, whole, colors=[reference_colour], linestyles=reference_style,
                             linewidths=1.0)
            axes.set_aspect(spacing[vertical] / spacing[horizontal])
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title("%s (slice %d)" % (view, centre[axis]), fontsize=10)
            if column == 0:
                axes.set_ylabel(row_name, fontsize=11)
    handles = [Patch(facecolor=colour, edgecolor=colour, alpha=0.8)
               for _, colour in LABEL_STYLES.values()]
    names = [name for name, _ in LABEL_STYLES.values()]
    handles.append(Line2D([], [], color=reference_colour, linestyle=reference_style))
    names.append("ground-truth whole tumour")
    figure.legend(handles, names, loc="lower center", ncol=len(names), fontsize=9, frameon=False)
    figure.suptitle(title, fontsize=11)
    figure.subplots_adjust(left=0.03, right=0.99, top=0.92, bottom=0.06, wspace=0.03, hspace=0.08)

    with atomic_output(path_png, suffix=".png") as temporary:
        with open(temporary, "wb") as stream:
            figure.savefig(stream, format="png", facecolor="white")
    return path_png
