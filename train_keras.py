#!/usr/bin/env python
"""Train the hierarchical dense 3-D CNN on BraTS: ``python train_keras.py --model dense24 -r <root>``.

``python train_keras.py --demo`` generates a small synthetic dataset and trains on it;
``--summary`` prints the model and exits. See ``--help`` for every flag.
"""
import sys


def main(argv=None):
    """Run the command; return the exit code (0 success, 2 bad input or configuration)."""
    from densenet3d_keras.config import build_parser, given_options, resolve

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = resolve(args)
        from densenet3d_keras import compat, training

        training.apply_gpu_choice(config)  # before the thread choice looks for GPUs
        config["intra_op_threads"], config["inter_op_threads"] = compat.apply_thread_counts(
            config["intra_op_threads"], config["inter_op_threads"])

        if config["summary"]:
            from densenet3d_keras.models import build_model

            build_model(config["model_name"], config["patch_size"], padding=config["padding"]).summary(line_length=120)
            return 0
        if config["demo"]:
            training.apply_demo_defaults(config, given_options(argv))
            training.ensure_demo_dataset(config["root_path"])
        training.train(config)
    except (ValueError, OSError) as error:
        sys.stderr.write("error: %s\n" % error)
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
