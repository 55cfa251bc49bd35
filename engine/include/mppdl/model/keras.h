#pragma once

// Keras model JSON (what `model.to_json()` writes and MADlib keeps in a model architecture table)
// to and from mppdl architectures. Only the architecture travels: no weights, no optimizer.

#include "mppdl/model/architecture.h"

#include <string>

namespace mppdl::model {

/// Converts a Keras `Sequential` model JSON: {"class_name": "Sequential", "config": {"name": ...,
/// "layers": [...]}} (Keras 2), or with "config" the list of layers itself (older Keras).
///
/// Layers: InputLayer, Conv2D, MaxPooling2D, Dense, Dropout, Flatten, Activation and LeakyReLU.
/// The input shape is the first layer's `batch_input_shape` (or Keras 3's `batch_shape`):
/// [null, H, W, C] (channels_last) becomes an Input of shape [C, H, W], [null, F] one of [F]. An
/// `activation` other than linear becomes its own layer after the one that has it, named
/// "<layer>_<activation>". "same" padding with a stride other than 1 becomes explicit padding when
/// TensorFlow would pad both sides equally.
///
/// Throws ConfigError "ORIGIN: ..." for text that is not JSON or not a Sequential model, and
/// "ORIGIN: layers[I] \"NAME\" (CLASS): ..." for an unknown layer class or an option mppdl cannot
/// express (channels_first, dilation_rate, groups, an unsupported activation, padding TensorFlow
/// applies unevenly). The result is validated with analyze(); its problems are a ConfigError too.
/// Flatten flattens channels-first in mppdl: the layers and shapes are Keras', but weights
/// trained in Keras after a Flatten would need their rows permuted (none are imported).
Architecture fromKerasJson(const std::string& json, const std::string& origin = "<string>");

/// The Keras 2 JSON of a design made of a sequence of Input, Conv2D, MaxPool2D, Dense, Dropout,
/// Flatten, ReLU, LeakyReLU, Softmax, Tanh and Sigmoid layers, Input first:
/// {"class_name": "Sequential", "config": {"name": ..., "layers": [...]}, "keras_version": "2.11.0",
/// "backend": "tensorflow"}. The first layer carries batch_input_shape [null, H, W, C] (or [null, F]);
/// an activation directly after a Conv2D or Dense folds into its `activation`. ConfigError naming
/// the layer for anything Keras' Sequential cannot say (BatchNorm, AvgPool2D, Add, Concat, a branch,
/// padding that is neither valid nor TensorFlow's same) and for an invalid design.
/// fromKerasJson(toKerasJson(a)) has a's layer types, shapes and parameter counts.
std::string toKerasJson(const Architecture& architecture);

} // namespace mppdl::model
