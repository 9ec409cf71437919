"""Exact ONNX graph rewrites applied before ONNX Runtime loads a model (the file on disk is untouched).

scalar_prelu_to_leaky_relu: a PRelu whose slope is one number is a LeakyRelu with that alpha. ONNX
Runtime runs PRelu through its generic broadcasting kernel, and OpenVINO exports (face_reid_0095: 48 of
them) use a (1, 1, 1) slope everywhere: the model spends more time in PRelu than in its convolutions.
As LeakyRelu it is the same arithmetic (outputs equal bit for bit) at less than half the latency.
"""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def scalar_prelu_to_leaky_relu(path: str | Path) -> bytes | None:
    """The model at `path` with every scalar-slope PRelu replaced by LeakyRelu, serialised; None when the
    model has no such node (load the file as it is). The check reads the bytes first and parses the
    graph only when the op name occurs, so other models pay no parsing cost."""
    raw = Path(path).read_bytes()
    if b"PRelu" not in raw:
        return None
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(raw)
    inits = {i.name: i for i in model.graph.initializer}
    nodes, changed = [], 0
    for node in model.graph.node:
        slope = inits.get(node.input[1]) if node.op_type == "PRelu" and len(node.input) == 2 else None
        if slope is not None and numpy_helper.to_array(slope).size == 1:
            alpha = float(numpy_helper.to_array(slope).reshape(-1)[0])
            nodes.append(helper.make_node("LeakyRelu", [node.input[0]], list(node.output),
                                          name=node.name or f"prelu_as_leaky_{changed}", alpha=alpha))
            changed += 1
        else:
            nodes.append(node)
    if not changed:
        return None
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in model.graph.node for name in node.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    log.debug("%s: %d scalar-slope PRelu nodes run as LeakyRelu", Path(path).name, changed)
    return model.SerializeToString()
