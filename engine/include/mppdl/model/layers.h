#pragma once

#include <string>
#include <vector>

namespace mppdl::model {

enum class ParamType {
    Int,     ///< an integer, e.g. units, filters
    Float,   ///< a real number, e.g. rate, eps
    Bool,    ///< e.g. bias
    String,  ///< a string (no built-in type takes a plain one yet)
    Pair,    ///< an integer or [h, w], e.g. kernel_size, stride
    Shape,   ///< a list of integers, e.g. Input's shape
    Padding, ///< "valid", "same", an integer or [h, w] (Conv2D's padding)
};

/// How messages and help describe a parameter type ("an integer", "true or false").
const char* toString(ParamType type);

/// One parameter a layer type accepts.
struct ParamInfo {
    const char* name;
    ParamType type;
    /// The default as JSON text ("1", "true", "\"valid\""); nullptr when the parameter is required;
    /// "null" when the default follows from other parameters (the description says how, e.g. a
    /// pool's stride defaults to its pool_size).
    const char* defaultValue;
    const char* description;
};

/// One layer type of the engine. The table behind layerTypes() (layers.cpp) is the single list
/// that validation, shape inference, the builder, the CLI's help and the GUI's palette read.
///
/// Shapes are per sample, without the batch dimension. Parameter counts are trainable parameters
/// only (BatchNorm's running statistics are buffers, not counted). FLOPs are per sample for the
/// inference forward pass:
/// - Conv2D, Dense: 2 per multiply-add, plus one add per output element for the bias;
/// - MaxPool2D, AvgPool2D: pool_h * pool_w per output element;
/// - BatchNorm: 2 per element (scale and shift, running statistics folded);
/// - ReLU, LeakyReLU, Tanh, Sigmoid, Softmax: 1 per output element;
/// - Add: 1 per output element for each input after the first;
/// - Input, Flatten, Dropout (identity at inference), Concat: 0.
struct LayerTypeInfo {
    const char* name;     ///< "Conv2D"
    const char* category; ///< "input", "convolution", "pooling", "normalization", "core",
                          ///< "activation", "merge"
    const char* description;
    std::vector<ParamInfo> params;
    int minInputs; ///< 0 for Input
    int maxInputs; ///< -1 for any number (Add, Concat)
};

/// Every layer type, in palette order (by category).
const std::vector<LayerTypeInfo>& layerTypes();
/// nullptr when there is no such type (names are case-sensitive, as in Keras).
const LayerTypeInfo* findLayerType(const std::string& name);

} // namespace mppdl::model
