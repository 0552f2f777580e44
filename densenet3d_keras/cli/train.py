"""``train_keras.py``: train the hierarchical dense 3-D CNN on BraTS.

``python train_keras.py --model dense24 -r <root>``; ``--demo`` generates a small synthetic
dataset and trains on it; ``--summary`` prints the model and exits. The flags keep the
reference's short forms (``-r``, ``-mn``, ``-bs``, ``-e``, ``-nc``, ``-sp``, ``-lp``, ``-c``,
``-gpu``, ``-hs``/``-ws``/``-cs``, ``-ps``) and add long forms. Boolean flags take
``true``/``false`` (the reference's ``type=bool`` turned ``-nc False`` into True).
"""
from densenet3d_keras.cli import runner
from densenet3d_keras.cli.runner import (ArgumentParser, add_graph_mode_flag, add_thread_flags,
                                         apply_graph_mode, run_command, str2bool)
from densenet3d_keras.core.compat import PRECISION_POLICIES
from densenet3d_keras.models.presets import MODEL_NAMES
from densenet3d_keras.runtime.cluster import STRATEGIES
from densenet3d_keras.runtime.npu import PRECISION_MODES
from densenet3d_keras.training.config import DEFAULTS, LR_SCHEDULES
from densenet3d_keras.training.recipes import RECIPES, apply_recipe
from generators.sampling import SAMPLING_MODES


def build_parser():
    """The ``train_keras.py`` argument parser."""
    parser = ArgumentParser(
        prog="train_keras.py",
        description="Train the hierarchical dense 3-D CNN for brain-tumour segmentation on BraTS.")
    _add_data_flags(parser.add_argument_group("data"))
    _add_model_flags(parser.add_argument_group("model"))
    _add_training_flags(parser.add_argument_group("training"))
    _add_output_flags(parser.add_argument_group("output"))
    _add_validation_flags(parser.add_argument_group("validation and monitoring"))
    _add_device_flags(parser.add_argument_group("device"))
    _add_scale_flags(parser.add_argument_group("scale-out (docs/distributed.md)"))
    return parser


def _add_data_flags(data):
    data.add_argument("-r", "--root-path", dest="root_path", default=DEFAULTS.root_path,
                      help="dataset root with one folder per case")
    data.add_argument("--train-list", dest="train_list", default=DEFAULTS.train_list,
                      help="case list file (default: <root>/train.txt if present, else every case)")
    data.add_argument("-nc", "--n4correction", dest="n4correction", type=str2bool, default=DEFAULTS.n4correction,
                      metavar="{true,false}", help="read the N4-corrected files (default false)")
    data.add_argument("--cache-dir", dest="cache_dir", default=DEFAULTS.cache_dir,
                      help="preprocessing cache (default $DENSENET3D_CACHE or ~/.cache/densenet3d_keras)")
    data.add_argument("--skip-incomplete", dest="skip_incomplete", action="store_true",
                      help="leave out (and list) case folders under the root that are not "
                           "complete cases, instead of stopping")
    data.add_argument("--demo", action="store_true",
                      help="generate a small synthetic BraTS-like dataset and train on it")


def _add_model_flags(model):
    model.add_argument("-mn", "--model-name", "--model", dest="model_name", default=DEFAULTS.model_name,
                       help="one of: %s" % ", ".join(MODEL_NAMES))
    model.add_argument("--padding", choices=("same", "valid"), default=DEFAULTS.padding,
                       help="'same' as the reference, or 'valid': identical weights and inference "
                            "logits, several times faster training")
    model.add_argument("--summary", action="store_true", help="print model.summary() and exit")


def _add_training_flags(train):
    train.add_argument("-bs", "--batch-size", dest="batch_size", type=int, default=DEFAULTS.batch_size)
    train.add_argument("-e", "--num-epochs", dest="num_epochs", type=int, default=DEFAULTS.num_epochs)
    train.add_argument("--lr", dest="lr", type=float, default=DEFAULTS.lr, help="Adam learning rate")
    train.add_argument("--n-pos", dest="n_pos", type=int, default=DEFAULTS.n_pos,
                       help="tumour patch centres per patient and epoch")
    train.add_argument("--n-neg", dest="n_neg", type=int, default=DEFAULTS.n_neg,
                       help="background patch centres per patient and epoch")
    train.add_argument("--seed", dest="seed", type=int, default=DEFAULTS.seed)
    train.add_argument("-hs", "--height-size", dest="hsize", type=int, default=DEFAULTS.patch_size)
    train.add_argument("-ws", "--width-size", dest="wsize", type=int, default=DEFAULTS.patch_size)
    train.add_argument("-cs", "--channel-size", dest="csize", type=int, default=DEFAULTS.patch_size,
                       help="patch size along the third axis")
    train.add_argument("-ps", "--pred-size", dest="psize", type=int, default=None,
                       help="output block size (patch size - 26)")
    train.add_argument("--performance", dest="max_batches_per_patient", nargs="?", type=int,
                       const=5, default=DEFAULTS.max_batches_per_patient,
                       help="performance run: only the first N batches (default 5) of each patient")
    train.add_argument("--workers", dest="workers", type=int, default=DEFAULTS.workers,
                       help="Keras data-loading threads")
    train.add_argument("--recipe", dest="recipe", default=DEFAULTS.recipe, choices=sorted(RECIPES),
                       help="a named set of the flags below, chosen by measurement (real: "
                            "real BraTS scans on a CPU budget; docs/real_data.md); flags given "
                            "on the command line override it")
    train.add_argument("--sampling", dest="sampling", choices=SAMPLING_MODES, default=DEFAULTS.sampling,
                       help="patch centres: reference (tumour / flair > 0 background) or "
                            "balanced (tumour labels in equal shares, background from the brain "
                            "as inference defines it)")
    train.add_argument("--shuffle", dest="shuffle", type=str2bool, default=DEFAULTS.shuffle,
                       metavar="{true,false}",
                       help="batches of all patients in a random order (default false: patient "
                            "after patient, as the reference)")
    train.add_argument("--augment", dest="augment", default=",".join(DEFAULTS.augment) or "none",
                       help="comma-separated: flip, intensity; or none (default)")
    train.add_argument("--lr-schedule", dest="lr_schedule", choices=LR_SCHEDULES, default=DEFAULTS.lr_schedule,
                       help="constant (reference) or poly: lr x (1 - step / steps) ^ 0.9 over the run")


def _add_output_flags(output):
    output.add_argument("-sp", "--save-path", dest="save_path", default=DEFAULTS.save_path,
                        help="checkpoint folder (default runs/<model>)")
    output.add_argument("-lp", "--load-path", dest="load_path", default=DEFAULTS.load_path,
                        help="checkpoint file or folder to start from")
    output.add_argument("-c", "--continue-training", dest="continue_training", type=str2bool,
                        default=DEFAULTS.continue_training, metavar="{true,false}",
                        help="resume optimizer state and epoch count from --load-path")
    output.add_argument("--log-dir", dest="log_dir", default=DEFAULTS.log_dir,
                        help="folder of train_<ASCEND_DEVICE_ID>.log (default: the save path)")
    output.add_argument("--keep", dest="keep", type=int, default=DEFAULTS.keep, help="checkpoints to keep")


def _add_validation_flags(group):
    group.add_argument("--val-list", dest="val_list", default=DEFAULTS.val_list,
                       help="validation case list (under -r; never trained on): whole-volume Dice "
                            "after every --val-every epochs, a validation line in the log and "
                            "<model>_best.h5")
    group.add_argument("--val-every", dest="val_every", type=int, default=DEFAULTS.val_every,
                       help="validate after every N epochs and after the last (default %d)" % DEFAULTS.val_every)
    group.add_argument("--tensorboard", dest="tensorboard", nargs="?", const="", default=DEFAULTS.tensorboard,
                       metavar="DIR", help="write TensorBoard scalars (losses, accuracies, "
                                           "validation Dice, learning rate; default DIR: "
                                           "<save path>/tensorboard)")
    group.add_argument("--reduce-lr-on-plateau", dest="reduce_lr_on_plateau", nargs="?",
                       const="0.5,2", default=DEFAULTS.reduce_lr_on_plateau, metavar="FACTOR,PATIENCE",
                       help="multiply the learning rate by FACTOR when the validation mean Dice "
                            "has not improved for PATIENCE validations (default 0.5,2)")
    group.add_argument("--early-stopping", dest="early_stopping", type=int, default=DEFAULTS.early_stopping,
                       metavar="PATIENCE",
                       help="stop when the validation mean Dice has not improved for PATIENCE "
                            "validations")


def _add_device_flags(device):
    device.add_argument("-gpu", "--gpu-id", dest="gpu", default=DEFAULTS.gpu,
                        help="CUDA_VISIBLE_DEVICES for this run (e.g. 0 or 0,1)")
    device.add_argument("--precision", choices=sorted(PRECISION_POLICIES), default=DEFAULTS.precision,
                        help="float32, or Keras mixed precision with bfloat16 or float16 "
                             "computation (TensorFlow 2; docs/performance.md)")
    add_graph_mode_flag(device)
    add_thread_flags(device)


def _add_scale_flags(scale):
    scale.add_argument("--strategy", choices=STRATEGIES, default=DEFAULTS.strategy,
                       help="tf.distribute strategy: auto = multiworker with a TF_CONFIG cluster, "
                            "mirrored with several GPUs, else default")
    scale.add_argument("--scale-lr", dest="scale_lr", action="store_true",
                       help="multiply --lr by the number of workers / Ascend ranks")
    scale.add_argument("--precision-mode", dest="precision_mode", choices=PRECISION_MODES,
                       default=DEFAULTS.precision_mode,
                       help="Ascend NPU precision mode (must_keep_origin_dtype: pure FP32)")
    scale.add_argument("--loss-scale", dest="loss_scale", default=DEFAULTS.loss_scale,
                       help="Ascend NPU loss scaling: dynamic or a fixed number >= 1 (default off)")


def given_options(argv):
    """Configuration keys that ``argv`` sets explicitly (under any of their flag spellings)."""
    return runner.given_options(build_parser, argv)



def train_command(args, argv=()):
    """Resolve the flags and train (or print the summary). Returns 0."""
    from densenet3d_keras.runtime import devices, threads
    from densenet3d_keras.training import demo, trainer
    from densenet3d_keras.training.config import resolve

    args.graph_mode = apply_graph_mode(args.graph_mode)  # before anything runs TensorFlow
    given = given_options(argv)
    config = resolve(apply_recipe(args, given))
    devices.apply_gpu_choice(config.gpu)  # once, before the thread choice looks for GPUs
    config.intra_op_threads, config.inter_op_threads = threads.apply_thread_counts(
        config.intra_op_threads, config.inter_op_threads)
    if config.summary:
        from densenet3d_keras.models.builder import build_model

        build_model(config.model_name, config.patch_size, padding=config.padding).summary(line_length=120)
        return 0
    if config.demo:
        demo.apply_demo_defaults(config, given)
        demo.ensure_demo_dataset(config.root_path)
    trainer.train(config)
    return 0


def main(argv=None):
    """Run ``train_keras.py``; returns the exit code (0, 2 bad input, 130 interrupted)."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(build_parser(), lambda args: train_command(args, argv), argv)
