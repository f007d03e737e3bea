"""What both exporters' files are made to agree on after the framework has written them: the
output named `logits`, the batch dimension named `batch`, and the metadata (class names, config,
test accuracy). Only names and metadata change here; the graph is the framework exporter's own.
Needs the `onnx` package (the `export` extra), no framework.
"""

from __future__ import annotations

from pathlib import Path

from fmnist.onnx_model import BATCH_DIM, INPUT_NAME, OUTPUT_NAME


def finalize(path: Path, metadata: dict[str, str]) -> dict[str, object]:
    """Rename the single output to `logits`, name the batch dimension, set the metadata, check
    the model with onnx's checker and save it in place. Returns its opset and producer."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    if [i.name for i in graph.input] != [INPUT_NAME] or len(graph.output) != 1:
        raise ValueError(
            f"exporter wrote inputs {[i.name for i in graph.input]} and {len(graph.output)} outputs;"
            f" expected one input '{INPUT_NAME}' and one output"
        )
    old = graph.output[0].name
    if old != OUTPUT_NAME:
        for node in graph.node:
            node.output[:] = [OUTPUT_NAME if name == old else name for name in node.output]
            node.input[:] = [OUTPUT_NAME if name == old else name for name in node.input]
        graph.output[0].name = OUTPUT_NAME
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return {
        "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
    }
