"""ONNX, both ways: an eager model exported, run by onnxruntime and imported back; a graph
with its gradients exported; a torch-exported model imported and fine-tuned; and imported
inference against onnxruntime on the same machine, side by side.

    python -m comparisons.onnx_both_ways [--quick] [--threads N] [--out DIR]
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx

import eager
import eager.onnx
import staticgraph as sg
from eager import nn

from .common import interleaved, optional, run_section, shown, table
from .training import BATCH, CNN, LR, build_graph, load_digits

INFERENCE_SIZES = (784, 1024, 1024, 10)  # the MLP, batch 256
CONVOLUTIONAL = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "Col2Im"}
INFERENCE_BATCH = 256


def _largest_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - y))) for x, y in zip(a, b))


def _ort_session(ort, model: bytes, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # as many as numpy's BLAS uses (--threads)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def eager_model_round_trip(ort, data, threads: int) -> dict:
    """An eager MLP exported, run by onnxruntime, imported back and run here."""
    x = data[0][:BATCH]
    eager.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.LayerNorm(128), nn.Linear(128, 10))
    model.eval()
    want = model(eager.tensor(x)).detach().numpy()
    exported = eager.onnx.export(model, eager.tensor(x), input_names=["images"],
                                 dynamic_axes={"images": [0]})
    imported = sg.onnx.import_model(exported)
    result = {"operators": sorted({n.op_type for n in exported.graph.node}),
              "imported vs eager": _largest_difference(imported(x), [want])}
    if ort is not None:
        session = _ort_session(ort, exported.SerializeToString(), threads)
        result["onnxruntime vs eager"] = _largest_difference(
            session.run(None, {"images": x}), [want])
    return result


def graph_with_gradients(ort, data, threads: int, model=None) -> dict:
    """A digits training graph's loss and gradients (the MLP's, or ``model``'s), exported and
    run by onnxruntime."""
    g, x, y, logits, loss, update = build_graph() if model is None else build_graph(model)
    weights = [v for v in g.variables if v.trainable]
    fetches = [logits, loss, *sg.gradients(loss, weights)]
    feeds = {x: data[0][:BATCH], y: data[1][:BATCH]}
    model = sg.onnx.export(fetches, [x, y], input_names=["images", "labels"])
    result = {"nodes": len(model.graph.node), "outputs": len(model.graph.output)}
    convolutional = sorted({n.op_type for n in model.graph.node} & CONVOLUTIONAL)
    if convolutional:
        result["convolution operators"] = convolutional
    if ort is not None:
        want = sg.Session(g).run(fetches, feeds)
        got = _ort_session(ort, model.SerializeToString(), threads).run(
            None, {"images": feeds[x], "labels": feeds[y]})
        result["onnxruntime vs Session"] = _largest_difference(got, want)
    return result


def _torch_mlp(torch, sizes: tuple[int, ...]):
    torch.manual_seed(0)
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1]).eval()


def _torch_export(torch, module, example) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, example, buffer, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}}, opset_version=17, dynamo=False)
    return buffer.getvalue()


def fine_tune_torch_model(torch, data, steps: int) -> dict:
    """A torch MLP exported by torch.onnx, imported trainable, fine-tuned here with sg.optim."""
    x_train, y_train, x_test, y_test = data
    module = _torch_mlp(torch, (64, 32, 10))
    exported = _torch_export(torch, module, torch.zeros(1, 64))
    imported = sg.onnx.import_model(exported, trainable=True)
    with imported.graph.as_default():
        labels = sg.placeholder((None,), "int64", name="labels")
        loss = sg.cross_entropy(imported.outputs[0], labels)
        step = sg.optim.SGD(LR * 4, momentum=0.9).minimize(loss)
    session, (x,) = imported.session, imported.inputs
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        idx = rng.integers(0, len(y_train), BATCH)
        losses.append(float(session.run([loss, step], {x: x_train[idx],
                                                       labels: y_train[idx]})[0]))
    accuracy = float(np.mean(session.run(imported.outputs[0], {x: x_test}).argmax(1) == y_test))
    return {"operators": sorted({n.op_type for n in onnx.load_from_string(exported).graph.node}),
            "first loss": losses[0], "last loss": losses[-1], "steps": steps,
            "test accuracy": accuracy}


def inference_speed(torch, ort, repeats: int, threads: int) -> dict:
    """The issue's MLP exported by torch, imported here, against onnxruntime, batch 256."""
    module = _torch_mlp(torch, INFERENCE_SIZES)
    model = _torch_export(torch, module, torch.zeros(1, INFERENCE_SIZES[0]))
    x = np.random.default_rng(0).standard_normal((INFERENCE_BATCH, INFERENCE_SIZES[0]))
    x = x.astype(np.float32)
    imported = sg.onnx.import_model(model)
    run_here = imported.session.compiled(imported.outputs, {imported.inputs[0]: x})
    programs = {"staticgraph (imported, compiled)": lambda: imported(x)}
    want = module(torch.from_numpy(x)).detach().numpy()
    result = {"imported vs torch": _largest_difference(imported(x), [want]),
              "kernels per run": run_here.executable.kernels_per_run}
    if ort is not None:
        session = _ort_session(ort, model, threads)
        programs["onnxruntime (CPU)"] = lambda: session.run(None, {"x": x})
    times = interleaved(programs, repeats, "imported MLP inference")
    result["ms per run"] = {name: t.summary("ms") for name, t in times.items()}
    if ort is not None:
        result["staticgraph / onnxruntime"] = (times["staticgraph (imported, compiled)"].median /
                                              times["onnxruntime (CPU)"].median)
    return result


def run(ctx) -> dict:
    ort = optional("onnxruntime")
    data = load_digits()
    results = {"eager model exported and imported back":
               eager_model_round_trip(ort, data, ctx.threads),
               "graph with gradients exported": graph_with_gradients(ort, data, ctx.threads),
               "CNN with gradients exported": graph_with_gradients(ort, data, ctx.threads,
                                                                   CNN)}
    if ctx.torch is not None:
        results["torch model imported and fine-tuned"] = fine_tune_torch_model(
            ctx.torch, data, 20 if ctx.quick else 100)
        results["inference, imported vs onnxruntime"] = inference_speed(
            ctx.torch, ort, 10 if ctx.quick else 60, ctx.threads)
    return {"text": _text(results), "markdown": "```\n" + _text(results) + "\n```",
            "data": results}


def _text(results: dict) -> str:
    lines = []
    for title, result in results.items():
        lines.append(f"{title}:")
        rows = [[key, _format(value)] for key, value in result.items()]
        lines += ["  " + line for line in table(rows, ["", "value"]).splitlines()[2:]]
    speed = results.get("inference, imported vs onnxruntime", {})
    if "staticgraph / onnxruntime" in speed:
        lines.append(f"imported MLP {'-'.join(map(str, INFERENCE_SIZES))}, batch "
                     f"{INFERENCE_BATCH}: {speed['staticgraph / onnxruntime']:.2f}x "
                     "onnxruntime's time (target <= 1.5x, moonshot 1.2x)")
    return "\n".join(lines)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict) and "median" in value:
        return shown(value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_format(v)}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


def main(argv: list[str] | None = None) -> dict:
    return run_section(__doc__.splitlines()[0], "onnx", run, argv)


if __name__ == "__main__":
    main()
