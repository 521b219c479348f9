"""Safe mode for SavedModels: refuse a graph that touches files or runs Python, before any of it runs.

A SavedModel is code: its functions run inside TensorFlow when it is loaded, traced and converted,
and an op like ``WriteFile`` in ``serving_default`` writes its file during ``convert``. Keras's safe
mode covers ``.keras`` files only, so this module reads ``saved_model.pb`` as a protobuf (nothing is
loaded or executed) and lists every op of the graph and its function library that reads or writes
files, talks to the network, runs Python or prints to a file. Any such op refuses the model unless
the user passes ``--unsafe``.

The one exception is the standard checkpoint path: the save and restore functions the SavedModel's
``saver_def`` names (``SaveV2``, ``RestoreV2``, ``MergeV2Checkpoints`` of its variables) — and only
those ops, only there.
"""

from __future__ import annotations

from pathlib import Path

from keras_edge.device.contract.errors import ModelError

# ops that read or write files, reach other machines, run Python or write where the user did not ask
IO_OPS = frozenset({
    # Python
    "PyFunc", "PyFuncStateless", "EagerPyFunc",
    # files
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2", "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2",
    "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2", "LMDBReader",
    "IdentityReader", "IdentityReaderV2", "ReaderReadV2", "ReaderRead", "GenerateVocabRemapping", "LoadAndRemapMatrix",
    # checkpoints (allowed only on the saver_def's own path, below)
    "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints",
    # datasets that read or write files or databases
    "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2",
    "TextLineDataset", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "LMDBDataset", "ExperimentalLMDBDataset",
    "SqlDataset", "ExperimentalSqlDataset", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "SaveDataset",
    "SaveDatasetV2", "LoadDataset", "SnapshotDataset", "SnapshotDatasetV2", "SnapshotDatasetReader",
    "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
    # summaries and debugging dumps (files)
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary", "WriteScalarSummary", "WriteHistogramSummary",
    "WriteImageSummary", "WriteAudioSummary", "WriteRawProtoSummary", "WriteGraphSummary", "ImportEvent",
    "FlushSummaryWriter", "CloseSummaryWriter", "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3",
    # other machines
    "Rpc", "TryRpc", "RpcClient", "RpcCall", "RpcServer", "RpcServerStart", "RpcServerRegister",
})
CHECKPOINT_OPS = frozenset({"Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints"})


def _called(attr_values) -> list[str]:
    """Function names an op's attributes call (``f``, ``then_branch``, ``body``, lists of functions…)."""
    names = []
    for v in attr_values:
        if v.func.name:
            names.append(v.func.name)
        names += [f.name for f in v.list.func if f.name]
    return names


def risky_ops(saved_model_pb: bytes) -> list[str]:
    """``"op (in function)"`` for every op of the SavedModel that does I/O or runs Python, outside the
    checkpoint functions its ``saver_def`` names; an empty list for a model that only computes."""
    from tensorflow.core.protobuf import saved_model_pb2   # the protobuf classes only: nothing is loaded

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString(saved_model_pb)
    found: list[str] = []
    for mg in sm.meta_graphs:
        library = {f.signature.name: f for f in mg.graph_def.library.function}
        nodes = {n.name: n for n in mg.graph_def.node}
        saver = [mg.saver_def.save_tensor_name.split(":")[0], mg.saver_def.restore_op_name.split(":")[0]]
        saver_scope = mg.saver_def.restore_op_name.rpartition("/")[0]
        checkpoint_fns: set[str] = set()
        todo = [name for s in saver if s in nodes for name in _called(nodes[s].attr.values())]
        while todo:                            # the saver's functions and everything they call
            name = todo.pop()
            if name in checkpoint_fns or name not in library:
                continue
            checkpoint_fns.add(name)
            todo += [c for n in library[name].node_def for c in _called(n.attr.values())]
        for n in mg.graph_def.node:
            on_saver_path = bool(saver_scope) and n.name.startswith(saver_scope + "/")   # TF1: save/RestoreV2
            if _risky(n, on_saver_path):
                found.append(f"{n.op} (node {n.name})")
        for name, fn in library.items():
            for n in fn.node_def:
                if _risky(n, name in checkpoint_fns):
                    found.append(f"{n.op} (in {name})")
    return sorted(set(found))


def _risky(node, on_checkpoint_path: bool) -> bool:
    if node.op == "PrintV2":   # printing is harmless unless it goes to a file ("file://…")
        stream = node.attr["output_stream"].s.decode("utf-8", "replace") if "output_stream" in node.attr else ""
        return stream.startswith("file://")
    if node.op not in IO_OPS:
        return False
    return not (on_checkpoint_path and node.op in CHECKPOINT_OPS)


def check_savedmodel(path: str | Path) -> None:
    """Refuse a SavedModel directory whose graph reads or writes files or runs Python (safe mode)."""
    pb = Path(path) / "saved_model.pb"
    try:
        data = pb.read_bytes()
        ops = risky_ops(data)
    except OSError as e:
        raise ModelError(f"{pb} cannot be read ({e.strerror or e})", "check the SavedModel directory") from None
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and others on a damaged file
        raise ModelError(f"{pb} is not a readable SavedModel ({type(e).__name__})",
                         "re-export it with model.export(path)") from None
    if ops:
        shown = ", ".join(ops[:4]) + (f" and {len(ops) - 4} more" if len(ops) > 4 else "")
        raise ModelError(f"{path} is a SavedModel whose graph reads or writes files or runs Python: {shown}; "
                         "safe mode refuses to run it", "if you trust this model, pass --unsafe")
