#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace mppdl::model {

/// Per-sample tensor shape, without the batch dimension: {C, H, W} or {F}.
using Shape = std::vector<int64_t>;

/// "64x7x7", "128"; "?" for an empty (unknown) shape. The form every message uses.
std::string formatShape(const Shape& shape);

/// A layer parameter as written in the JSON document. Which alternative a parameter takes is
/// declared in the layer table (layers.h); integer lists hold shapes and (h, w) pairs. The value
/// is kept as written (a string where an integer belongs stays a string) so that analyze() can
/// report the mismatch with the layer's name.
using Param = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>>;

/// One node of the layer graph.
struct Layer {
    std::string name;
    std::string type;
    /// Names of the layers feeding this one; empty means the layer written before it
    /// (a Sequential model needs no "inputs" at all). Input layers take none.
    std::vector<std::string> inputs;
    std::map<std::string, Param> params;
    /// 1-based line of the layer's object in the JSON document (0 when built in code).
    int line = 0;
};

/// A network design: a layer graph in the versioned JSON format of DESIGN.md. Designs may be
/// invalid; analyze() lists what is wrong with them.
struct Architecture {
    std::string name;
    std::string description;
    std::vector<Layer> layers;
    /// The layer whose output is the network's output; empty means the one layer that feeds no
    /// other (analyze() reports a problem when there are several).
    std::string output;
};

/// The format version written by toJson() and the newest one parseArchitecture() reads.
constexpr int kArchitectureFormatVersion = 1;

/// Parses a JSON document:
///
///     {"format": "mppdl-architecture", "version": 1, "name": "...", "description": "...",
///      "output": "optional layer name",
///      "layers": [{"name": "input", "type": "Input", "shape": [1, 28, 28]},
///                 {"name": "conv1", "type": "Conv2D", "filters": 32, "kernel_size": 3},
///                 {"name": "add1", "type": "Add", "inputs": ["a", "b"]}, ...]}
///
/// Parameters sit directly in the layer object; "inputs" is a name or a list of names. A layer
/// without "name" gets the lower-case type and a per-type counter ("conv2d_3"), skipping names
/// used elsewhere. "format" and "version" may be left out of hand-written files (version 1).
///
/// Throws ConfigError "ORIGIN:LINE:COLUMN: ..." for JSON syntax errors and "ORIGIN:LINE: ..." for
/// a document that is not an architecture: no "layers" list, a layer that is not an object or has
/// no string "type", a name or input that is not a string, a value no parameter can hold (null,
/// an object, a list of non-integers), an unknown top-level key, or a "version" newer than
/// kArchitectureFormatVersion (the message says a newer mppdl is needed).
///
/// Everything about the meaning of layers is analyze()'s, reported as problems naming the layer:
/// unknown types, unknown or missing parameters, a parameter of the wrong type (a string where an
/// integer belongs), values out of range, misfitting shapes.
Architecture parseArchitecture(const std::string& json, const std::string& origin = "<string>");

/// Reads and parses a file; throws DataError if it cannot be read. A Keras model JSON file (a
/// top-level "class_name") is imported with fromKerasJson() (keras.h), described as imported.
Architecture loadArchitecture(const std::string& path);

/// The canonical JSON of a design: top-level keys in the order above, one line per layer with
/// "name", "type", "inputs" (when given) and the parameters sorted by name; ends with a newline.
/// parseArchitecture(toJson(a)) == a for every design whose names are all non-empty.
std::string toJson(const Architecture& architecture);

/// A parameter as a layer object in the JSON document holds it: "32", "[3, 3]", "\"same\"".
std::string paramText(const Param& value);
/// The parameter that JSON text holds, as parseArchitecture() would read it from a layer object;
/// nullopt for text that is not JSON or not a value a parameter can hold (null, an object). What
/// an editor's user types goes through here, so that analyze() judges it as it would a file.
std::optional<Param> parseParamText(const std::string& text);

bool operator==(const Layer& a, const Layer& b);
bool operator==(const Architecture& a, const Architecture& b);

} // namespace mppdl::model
