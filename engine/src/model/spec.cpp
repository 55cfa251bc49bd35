#include "layer_table.h"
#include "mppdl/core/build_info.h"
#include "mppdl/core/error.h"
#include "mppdl/model/architecture.h"
#include "mppdl/model/keras.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

namespace mppdl::model {

namespace {

using nlohmann::json;

const char* const kFormatName = "mppdl-architecture";
const char* const kTopLevelKeys[] = {"format", "version", "name", "description", "output", "layers"};

// Reads characters for nlohmann's parser while counting them, so that the parser callback knows
// where in the text each layer object starts (nlohmann 3.11 keeps no positions in its values).
class CountingIterator {
public:
    using iterator_category = std::input_iterator_tag;
    using value_type = char;
    using difference_type = std::ptrdiff_t;
    using pointer = const char*;
    using reference = const char&;

    CountingIterator(const char* p, size_t* consumed) : m_p(p), m_consumed(consumed) {}
    reference operator*() const { return *m_p; }
    CountingIterator& operator++() {
        ++m_p;
        ++*m_consumed;
        return *this;
    }
    CountingIterator operator++(int) {
        CountingIterator old = *this;
        ++*this;
        return old;
    }
    bool operator==(const CountingIterator& o) const { return m_p == o.m_p; }
    bool operator!=(const CountingIterator& o) const { return m_p != o.m_p; }

private:
    const char* m_p;
    size_t* m_consumed;
};

// Maps byte offsets of a text to 1-based lines and columns.
class LineIndex {
public:
    explicit LineIndex(const std::string& text) {
        for (size_t i = 0; i < text.size(); ++i)
            if (text[i] == '\n')
                m_newlines.push_back(i);
    }
    int line(size_t offset) const {
        return 1 +
               static_cast<int>(std::lower_bound(m_newlines.begin(), m_newlines.end(), offset) - m_newlines.begin());
    }
    int column(size_t offset) const {
        auto it = std::lower_bound(m_newlines.begin(), m_newlines.end(), offset);
        if (it == m_newlines.begin())
            return static_cast<int>(offset) + 1;
        return static_cast<int>(offset - *(it - 1));
    }

private:
    std::vector<size_t> m_newlines;
};

std::string jsonTypeName(const json& v) {
    if (v.is_null())
        return "null";
    if (v.is_object())
        return "an object";
    if (v.is_array())
        return "a list";
    if (v.is_string())
        return "a string";
    if (v.is_boolean())
        return "a boolean";
    return "a number";
}

std::string jsonQuote(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

std::string toLower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// Where the parser saw the parts of the document that messages point at.
struct Positions {
    std::map<std::string, size_t> topKeys; // offset just past each top-level key
    std::vector<size_t> layerObjects;      // offset of each layer object's '{'
};

json parseJson(const std::string& text, const std::string& origin, Positions& positions) {
    size_t consumed = 0;
    std::string currentKey;
    bool inLayers = false;
    json::parser_callback_t callback = [&](int depth, json::parse_event_t event, json& parsed) {
        switch (event) {
        case json::parse_event_t::key:
            if (depth == 1) {
                currentKey = parsed.is_string() ? parsed.get<std::string>() : std::string();
                positions.topKeys[currentKey] = consumed;
                if (currentKey == "layers")
                    positions.layerObjects.clear(); // a repeated key: nlohmann keeps the last
            }
            break;
        case json::parse_event_t::array_start:
            if (depth == 1 && currentKey == "layers")
                inLayers = true;
            break;
        case json::parse_event_t::array_end:
            if (depth == 1)
                inLayers = false;
            break;
        case json::parse_event_t::object_start:
            // The lexer has read exactly through the '{' when the parser reports the object.
            if (depth == 2 && inLayers && consumed > 0)
                positions.layerObjects.push_back(consumed - 1);
            break;
        default: break;
        }
        return true;
    };
    try {
        return json::parse(CountingIterator(text.data(), &consumed),
                           CountingIterator(text.data() + text.size(), &consumed), callback);
    } catch (const json::parse_error& e) {
        // e.byte counts the characters read, the offending one included.
        const size_t offset = e.byte > 0 ? e.byte - 1 : 0;
        const LineIndex lines(text);
        std::string what = e.what();
        // nlohmann's text reads "[json.exception.parse_error.101] parse error at line L, column C:
        // syntax error ..."; keep what follows the position, which we print ourselves.
        const size_t column = what.find(", column ");
        const size_t colon = column == std::string::npos ? std::string::npos : what.find(": ", column);
        if (colon != std::string::npos)
            what = what.substr(colon + 2);
        throw ConfigError(origin + ":" + std::to_string(lines.line(offset)) + ":" +
                          std::to_string(lines.column(offset)) + ": " + what);
    }
}

} // namespace

namespace detail {

std::optional<Param> paramFromJson(const json& value) {
    switch (value.type()) {
    case json::value_t::number_integer: return Param(value.get<int64_t>());
    case json::value_t::number_unsigned: {
        const auto u = value.get<uint64_t>();
        if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            return Param(static_cast<int64_t>(u));
        return Param(static_cast<double>(u));
    }
    case json::value_t::number_float: return Param(value.get<double>());
    case json::value_t::boolean: return Param(value.get<bool>());
    case json::value_t::string: return Param(value.get<std::string>());
    case json::value_t::array: {
        std::vector<int64_t> list;
        for (const auto& element : value) {
            if (element.is_number_integer() && !element.is_number_unsigned())
                list.push_back(element.get<int64_t>());
            else if (element.is_number_unsigned() &&
                     element.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                list.push_back(static_cast<int64_t>(element.get<uint64_t>()));
            else
                return std::nullopt;
        }
        return Param(std::move(list));
    }
    default: return std::nullopt;
    }
}

std::string formatParam(const Param& value) {
    struct Visitor {
        std::string operator()(int64_t v) const { return std::to_string(v); }
        std::string operator()(double v) const { return json(v).dump(); }
        std::string operator()(bool v) const { return v ? "true" : "false"; }
        std::string operator()(const std::string& v) const { return jsonQuote(v); }
        std::string operator()(const std::vector<int64_t>& v) const {
            std::string out = "[";
            for (size_t i = 0; i < v.size(); ++i)
                out += (i ? ", " : "") + std::to_string(v[i]);
            return out + "]";
        }
    };
    return std::visit(Visitor{}, value);
}

} // namespace detail

std::string paramText(const Param& value) { return detail::formatParam(value); }

std::optional<Param> parseParamText(const std::string& text) {
    const json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded())
        return std::nullopt;
    return detail::paramFromJson(value);
}

std::string formatShape(const Shape& shape) {
    if (shape.empty())
        return "?";
    std::string out;
    for (size_t i = 0; i < shape.size(); ++i)
        out += (i ? "x" : "") + std::to_string(shape[i]);
    return out;
}

namespace {

Architecture parseDocument(const std::string& text, const std::string& origin) {
    Positions positions;
    const json doc = parseJson(text, origin, positions);
    const LineIndex lines(text);
    auto at = [&](size_t offset) { return origin + ":" + std::to_string(lines.line(offset)) + ": "; };
    auto atKey = [&](const std::string& key) {
        auto it = positions.topKeys.find(key);
        return it == positions.topKeys.end() ? origin + ": " : at(it->second > 0 ? it->second - 1 : 0);
    };

    if (!doc.is_object())
        throw ConfigError(origin + ": an architecture is a JSON object with a \"layers\" list, not " +
                          jsonTypeName(doc));
    if (doc.contains("class_name") && doc.contains("config"))
        throw ConfigError(origin + ": this is a Keras model JSON, not an mppdl architecture; import "
                                   "it as Keras JSON instead");
    for (const auto& item : doc.items()) {
        const auto& keys = kTopLevelKeys;
        if (std::find(std::begin(keys), std::end(keys), item.key()) == std::end(keys))
            throw ConfigError(atKey(item.key()) + "unknown key " + jsonQuote(item.key()) +
                              "; an architecture has format, version, name, description, output "
                              "and layers");
    }
    if (doc.contains("format") && doc["format"] != kFormatName)
        throw ConfigError(atKey("format") + "\"format\" must be \"" + kFormatName + "\", got " +
                          doc["format"].dump(-1, ' ', false, json::error_handler_t::replace));
    if (doc.contains("version")) {
        const json& v = doc["version"];
        if (!v.is_number_integer() || v.get<int64_t>() < 1)
            throw ConfigError(atKey("version") + "\"version\" must be a positive integer, got " +
                              v.dump(-1, ' ', false, json::error_handler_t::replace));
        if (v.is_number_unsigned() ? v.get<uint64_t>() > kArchitectureFormatVersion
                                   : v.get<int64_t>() > kArchitectureFormatVersion)
            throw ConfigError(atKey("version") + "architecture format version " + v.dump() +
                              " is newer than this mppdl (" + versionString() + ") reads (up to version " +
                              std::to_string(kArchitectureFormatVersion) + "); open it with a newer mppdl");
    }

    Architecture architecture;
    for (const char* key : {"name", "description", "output"}) {
        if (!doc.contains(key))
            continue;
        if (!doc[key].is_string())
            throw ConfigError(atKey(key) + "\"" + key + "\" must be a string, got " + jsonTypeName(doc[key]));
        std::string value = doc[key].get<std::string>();
        if (std::strcmp(key, "name") == 0)
            architecture.name = std::move(value);
        else if (std::strcmp(key, "description") == 0)
            architecture.description = std::move(value);
        else
            architecture.output = std::move(value);
    }
    if (!doc.contains("layers"))
        throw ConfigError(origin + ": no \"layers\" list");
    const json& layers = doc["layers"];
    if (!layers.is_array())
        throw ConfigError(atKey("layers") + "\"layers\" must be a list of layer objects, got " + jsonTypeName(layers));
    for (size_t i = 0; i < layers.size(); ++i)
        if (!layers[i].is_object())
            throw ConfigError(atKey("layers") + "layer " + std::to_string(i + 1) + " must be an object, got " +
                              jsonTypeName(layers[i]));

    std::set<std::string> usedNames;
    for (const auto& object : layers)
        if (object.contains("name") && object["name"].is_string())
            usedNames.insert(object["name"].get<std::string>());

    std::map<std::string, int> nextIndex; // per auto-name base
    for (size_t i = 0; i < layers.size(); ++i) {
        const json& object = layers[i];
        Layer layer;
        const size_t offset = i < positions.layerObjects.size() ? positions.layerObjects[i] : 0;
        layer.line = i < positions.layerObjects.size() ? lines.line(offset) : 0;
        const std::string where = layer.line > 0 ? at(offset) : origin + ": ";
        const std::string which = "layer " + std::to_string(i + 1);

        if (!object.contains("type") || !object["type"].is_string())
            throw ConfigError(where + which + " needs a \"type\" string (e.g. \"Dense\")");
        layer.type = object["type"].get<std::string>();
        if (object.contains("name")) {
            if (!object["name"].is_string())
                throw ConfigError(where + which + ": \"name\" must be a string, got " + jsonTypeName(object["name"]));
            layer.name = object["name"].get<std::string>();
        } else {
            const std::string base = layer.type.empty() ? "layer" : toLower(layer.type);
            int& n = nextIndex.emplace(base, 1).first->second;
            while (usedNames.count(base + "_" + std::to_string(n)))
                ++n;
            layer.name = base + "_" + std::to_string(n++);
            usedNames.insert(layer.name);
        }
        const std::string label = "layer " + jsonQuote(layer.name);

        for (const auto& item : object.items()) {
            const std::string& key = item.key();
            const json& value = item.value();
            if (key == "name" || key == "type")
                continue;
            if (key == "inputs") {
                if (value.is_string()) {
                    layer.inputs.push_back(value.get<std::string>());
                    continue;
                }
                const bool ok = value.is_array() &&
                                std::all_of(value.begin(), value.end(), [](const json& v) { return v.is_string(); });
                if (!ok)
                    throw ConfigError(where + label + ": \"inputs\" must be a layer name or a list of names");
                for (const auto& v : value)
                    layer.inputs.push_back(v.get<std::string>());
                continue;
            }
            auto param = detail::paramFromJson(value);
            if (!param)
                throw ConfigError(where + label + ": parameter " + jsonQuote(key) + " cannot be " +
                                  jsonTypeName(value) +
                                  " (parameters are numbers, booleans, strings or integer lists)");
            layer.params.emplace(key, std::move(*param));
        }
        architecture.layers.push_back(std::move(layer));
    }
    return architecture;
}

} // namespace

Architecture parseArchitecture(const std::string& text, const std::string& origin) {
    try {
        return parseDocument(text, origin);
    } catch (const json::exception& e) {
        // Not expected after the checks above; still a problem with this document, not a crash.
        throw ConfigError(origin + ": " + e.what());
    }
}

Architecture loadArchitecture(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw DataError("cannot read " + path + ": " + std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad())
        throw DataError("cannot read " + path + ": " + std::strerror(errno));
    // A Keras model JSON (what model.to_json() writes, what MADlib keeps) names its class at the top.
    const auto parsed = nlohmann::json::parse(text.str(), nullptr, false);
    if (parsed.is_object() && parsed.contains("class_name") && !parsed.contains("layers")) {
        auto imported = fromKerasJson(text.str(), path);
        imported.description = "Imported from Keras JSON " + path;
        return imported;
    }
    return parseArchitecture(text.str(), path);
}

std::string toJson(const Architecture& architecture) {
    std::string out = "{\n";
    out += "  \"format\": \"" + std::string(kFormatName) + "\",\n";
    out += "  \"version\": " + std::to_string(kArchitectureFormatVersion) + ",\n";
    out += "  \"name\": " + jsonQuote(architecture.name) + ",\n";
    out += "  \"description\": " + jsonQuote(architecture.description) + ",\n";
    if (!architecture.output.empty())
        out += "  \"output\": " + jsonQuote(architecture.output) + ",\n";
    if (architecture.layers.empty())
        return out + "  \"layers\": []\n}\n";
    out += "  \"layers\": [\n";
    for (size_t i = 0; i < architecture.layers.size(); ++i) {
        const Layer& layer = architecture.layers[i];
        out += "    {\"name\": " + jsonQuote(layer.name) + ", \"type\": " + jsonQuote(layer.type);
        if (!layer.inputs.empty()) {
            out += ", \"inputs\": [";
            for (size_t k = 0; k < layer.inputs.size(); ++k)
                out += (k ? ", " : "") + jsonQuote(layer.inputs[k]);
            out += "]";
        }
        for (const auto& [key, value] : layer.params)
            out += ", " + jsonQuote(key) + ": " + detail::formatParam(value);
        out += i + 1 < architecture.layers.size() ? "},\n" : "}\n";
    }
    return out + "  ]\n}\n";
}

bool operator==(const Layer& a, const Layer& b) {
    return a.name == b.name && a.type == b.type && a.inputs == b.inputs && a.params == b.params;
}

bool operator==(const Architecture& a, const Architecture& b) {
    return a.name == b.name && a.description == b.description && a.output == b.output && a.layers == b.layers;
}

} // namespace mppdl::model
