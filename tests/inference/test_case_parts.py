"""densenet3d_keras.inference.pipeline: splitting a run's cases into parts; and the resolved
configuration (densenet3d_keras.inference.config) of --tta, --ensemble and --part-id / --num-parts."""
import json
from collections import namedtuple

import pytest

from densenet3d_keras.cli import predict as predict_keras
from densenet3d_keras.inference import pipeline
from densenet3d_keras.inference.config import resolve

Case = namedtuple("Case", "case_id")


@pytest.mark.parametrize("num_cases", range(13))
def test_parts_cover_every_case_exactly_once(num_cases):
    # Listed in a scrambled order: the split is of the sorted ids, whatever the list order.
    cases = [Case("case_%02d" % ((7 * i) % 13)) for i in range(13)][:num_cases]
    for num_parts in range(1, 14):
        parts = [pipeline.part_of(cases, part_id, num_parts) for part_id in range(num_parts)]
        taken = [case.case_id for part in parts for case in part]
        assert sorted(taken) == sorted(case.case_id for case in cases)
        assert len(set(taken)) == len(taken)
        sizes = [len(part) for part in parts]
        assert max(sizes) - min(sizes) <= 1, "parts differ by at most one case"
        ordered = sorted(case.case_id for case in cases)
        for part_id, part in enumerate(parts):
            assert sorted(c.case_id for c in part) == ordered[part_id::num_parts]
            assert part == [case for case in cases if case in part], "the run's order is kept"


@pytest.mark.parametrize("part_id, num_parts", [(0, 0), (2, 2), (-1, 3)])
def test_part_of_refuses_a_part_out_of_range(part_id, num_parts):
    with pytest.raises(ValueError, match="part id"):
        pipeline.part_of([Case("a")], part_id, num_parts)


def config_for(argv):
    return predict_keras.resolve(predict_keras.build_parser().parse_args(argv))


def test_the_configuration_records_tta_ensemble_and_part(tmp_path):
    base = ["-m", "a.h5", "-mn", "tiny", "-r", str(tmp_path / "root"), "-o", str(tmp_path / "out")]
    plain = config_for(base)
    assert (plain.tta, plain.ensemble, plain.part_id, plain.num_parts) == (False, [], 0, 1)
    config = config_for(base + ["--tta", "--ensemble", "b.h5", "runs/c", "--part-id", "2",
                                "--num-parts", "3"])
    recorded = json.loads(json.dumps(config.to_dict()))
    assert recorded["tta"] is True and recorded["ensemble"] == ["b.h5", "runs/c"]
    assert recorded["part_id"] == 2 and recorded["num_parts"] == 3
    assert recorded["checkpoint"] == "a.h5"


def test_resolve_without_the_new_options_keeps_the_defaults(tmp_path):
    values = dict(vars(predict_keras.build_parser().parse_args(
        ["-m", "a.h5", "-r", str(tmp_path / "root"), "-o", str(tmp_path / "out")])))
    for name in ("tta", "ensemble", "part_id", "num_parts", "demo"):
        del values[name]
    config = resolve(values)
    assert (config.tta, config.ensemble, config.part_id, config.num_parts) == (False, [], 0, 1)
