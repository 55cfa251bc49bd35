#pragma once

// A trained model as an ONNX file that other runtimes (onnxruntime, OpenCV's DNN module, TensorRT)
// run, built on the ONNX protobuf definitions of Debian's libonnx-dev.

#include "mppdl/train/trained_model.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mppdl::interop {

/// The opsets the exporter writes: 13 (Softmax along one axis, as torch) to 17 (ONNX 1.12's newest).
constexpr int64_t kMinOnnxOpset = 13;
constexpr int64_t kMaxOnnxOpset = 17;

struct OnnxOptions {
    int64_t opset = kMinOnnxOpset;
    /// Extra metadata_props after mppdl's own, e.g. {"mppdl.run", "3"}.
    std::vector<std::pair<std::string, std::string>> metadata;
    /// The model's doc_string; empty: a description of the network, its input and output.
    std::string docString;
};

/// What was written.
struct OnnxSummary {
    int64_t opset = 0;
    int64_t nodes = 0;
    int64_t initializers = 0;
    int64_t weightBytes = 0; ///< float32 initializers
    int64_t fileBytes = 0;
    int64_t members = 1;
    int64_t classes = 0;
    std::vector<int64_t> inputShape; ///< per sample; the batch dimension is dynamic ("batch")
};

/// The graph's tensor names.
constexpr const char* kOnnxInput = "input";
constexpr const char* kOnnxOutput = "probabilities";

/// Writes `model` to `path` as one ONNX model:
/// - input "input", float32 [batch, ...sample shape], the raw values mppdl reads from a source
///   (pixels 0-255 for images): the graph applies the model's normalization first;
/// - output "probabilities", float32 [batch, classes]: softmax of the logits, and for an ensemble
///   the mean of its members' probabilities (one graph, members' weights prefixed "memberK.");
/// - weights as initializers named as in torch ("conv1.weight"); inference semantics (Dropout is
///   the identity, BatchNorm uses its running statistics);
/// - metadata_props: mppdl.classes (JSON list), mppdl.normalization (JSON: mode, scale, mean,
///   std), mppdl.input, mppdl.members, mppdl.architecture (the design's JSON), then `options`'.
/// The file is written beside `path` and renamed, so a failure leaves nothing behind.
/// ConfigError for an opset out of range or a layer that cannot be exported (named, with its
/// type); StorageError naming the path when it cannot be written.
OnnxSummary exportOnnx(const train::TrainedModel& model, const std::string& path, const OnnxOptions& options = {});

} // namespace mppdl::interop
