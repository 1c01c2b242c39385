"""--amp auto: the capability is detected through PyTorch and the speed measured; here the
capabilities and the probe are mocked, and a real run records what it chose."""

import math

import pytest
import torch
import yaml

from resnets import precision
from resnets.precision import choose_amp, native_bf16, step_seconds

CPU = torch.device("cpu")


def fake_cpu(monkeypatch, **features):
    every = {"avx512_bf16": False, "amx": False, "vnni": False, "avx512": False, "avx2": True}
    monkeypatch.setattr(precision, "cpu_features", lambda: every | features)


def never(dtype):
    raise AssertionError("no probe where the hardware has no native bf16")


@pytest.mark.parametrize(
    ("features", "native", "said"),
    [
        ({}, False, "AVX2 but no AVX512_BF16 or AMX"),
        ({"avx512": True}, False, "AVX-512 but no AVX512_BF16"),
        ({"avx512": True, "avx512_bf16": True}, True, "AVX512_BF16"),
        ({"amx": True}, True, "AMX"),
    ],
)
def test_cpu_bf16_is_read_from_the_features(monkeypatch, features, native, said):
    fake_cpu(monkeypatch, **features)
    found, why = native_bf16(CPU)
    assert found is native and said in why


def test_auto_on_a_cpu_without_bf16_is_fp32_without_probing(monkeypatch):
    fake_cpu(monkeypatch, avx512=True, vnni=True)
    amp, note = choose_amp("auto", CPU, never)
    assert amp == "none" and "fp32" in note and "emulated" in note


@pytest.mark.parametrize(("fp32", "bf16", "chosen"), [(2.0, 1.0, "bf16"), (1.0, 1.2, "none")])
def test_auto_on_a_bf16_cpu_follows_the_probe(monkeypatch, fp32, bf16, chosen):
    fake_cpu(monkeypatch, avx512=True, avx512_bf16=True)
    seconds = {None: fp32, torch.bfloat16: bf16}
    amp, note = choose_amp("auto", CPU, seconds.__getitem__)
    assert amp == chosen and f"{fp32 / bf16:.2f}x fp32" in note


def test_auto_keeps_fp32_where_bf16_gradients_are_not_finite(monkeypatch):
    fake_cpu(monkeypatch, avx512=True, avx512_bf16=True)
    seconds = {None: 2.0, torch.bfloat16: math.nan}  # however fast, wrong numbers lose
    amp, note = choose_amp("auto", CPU, seconds.__getitem__)
    assert amp == "none" and "non-finite gradients" in note


def test_auto_keeps_3d_models_in_fp32_on_a_cpu_and_warns_when_bf16_is_forced(monkeypatch):
    fake_cpu(monkeypatch, avx512=True, avx512_bf16=True)
    amp, note = choose_amp("auto", CPU, never, dims=3)
    assert amp == "none" and "bf16_conv3d.py" in note
    amp, note = choose_amp("bf16", CPU, never, dims=3)
    assert amp == "bf16" and "--amp none is safe" in note


def test_the_probe_reports_non_finite_gradients_as_nan():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    assert step_seconds(model, (3, 4), None) > 0
    with torch.no_grad():
        model[0].weight[0, 0] = math.inf
    assert math.isnan(step_seconds(model, (3, 4), None))
    assert math.isinf(
        model[0].weight.detach()[0, 0].item()
    )  # measured on a copy: the model is untouched


@pytest.mark.parametrize(("capability", "chosen"), [((9, 0), "bf16"), ((7, 5), "none")])
def test_auto_on_cuda_follows_the_compute_capability(monkeypatch, capability, chosen):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    amp, note = choose_amp("auto", torch.device("cuda", 0), never)
    assert amp == chosen and f"{capability[0]}.{capability[1]}" in note


def test_forced_precisions_are_kept_and_fp16_on_a_cpu_is_warned_about():
    assert choose_amp("bf16", CPU, never) == ("bf16", None)
    assert choose_amp("none", CPU, never) == ("none", None)
    amp, note = choose_amp("fp16", CPU, never)
    assert amp == "fp16" and "10x slower" in note


def test_a_run_records_the_precision_auto_chose(tmp_path):
    from resnets import train

    run = tmp_path / "run"
    summary = train(amp="auto", epochs=1, out=str(run), progress=False, tensorboard=False)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["amp"] in ("none", "bf16")  # what the probe chose, so a resume keeps it
    assert any(n.startswith("--amp auto: ") for n in summary["notes"])


def test_avx_vnni_counts_as_vnni_where_pytorch_asks_only_for_avx512s(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: False, raising=False)
    monkeypatch.setattr(precision, "_proc_flags", lambda: {"avx2", "avx_vnni"})
    assert precision.cpu_features()["vnni"] is True
    monkeypatch.setattr(precision, "_proc_flags", lambda: {"avx2"})
    assert precision.cpu_features()["vnni"] is False


def test_the_cpu_description_names_the_flags_that_decide_precision(monkeypatch):
    flags = {"fpu", "avx2", "avx512f", "avx512_bf16", "amx_tile", "sse4_2"}
    monkeypatch.setattr(precision, "_proc_flags", lambda: flags)
    text = precision.cpu_description()
    assert text.endswith("flags: amx_tile avx2 avx512_bf16 avx512f")
    assert "PyTorch CPU capability" in text


def test_deterministic_runs_let_no_timed_probe_decide(monkeypatch):
    fake_cpu(monkeypatch, avx512_bf16=True)
    amp, note = choose_amp("auto", CPU, never, deterministic=True)
    assert amp == "none" and "--deterministic" in note
    assert choose_amp("bf16", CPU, never, deterministic=True) == ("bf16", None)
