"""The verify tolerance a bundle records for each variant, from what convert measured on the reference samples."""

from keras_edge.host.convert.core import REFERENCE_SAMPLES, reference_tolerance


def test_no_agreement_is_not_read_as_full_agreement():
    # found in the coverage matrix: InceptionV3's int8 agreed with Keras on 0 of the 8 reference samples at convert
    # time; the recorded bound read 0.0 as "unknown" (1.0), so verify on the same machine failed at 87.5%
    tol = reference_tolerance({"max_abs_err": 0.6, "agreement": 0.0}, "int8", True, False)
    assert tol.min_agreement == 0.0
    assert tol.max_abs == 1.2


def test_agreement_less_one_sample():
    tol = reference_tolerance({"max_abs_err": 0.01, "agreement": 0.75}, "int8", True, False)
    assert abs(tol.min_agreement - (0.75 - 1 / REFERENCE_SAMPLES)) < 1e-12
    unknown = reference_tolerance({"max_abs_err": 0.01, "agreement": None}, "int8", True, False)
    assert abs(unknown.min_agreement - (1 - 1 / REFERENCE_SAMPLES)) < 1e-12


def test_error_floor_and_outputs():
    tol = reference_tolerance({"max_abs_err": 0.0, "agreement": None,
                               "per_output": [{"max_abs_err": 0.0}, {"max_abs_err": 0.5}]}, "fp32", False, True)
    assert tol.min_agreement == 1.0 and tol.max_abs > 0
    assert tol.output_max_abs[1] == 1.0 and tol.output_max_abs[0] == tol.max_abs
