// A trained model as a row of a MADlib model architecture table (madlib_model.h). The byte layout
// follows MADlib's madlib_keras_serializer.serialize_nd_weights(): np.float32(np.concatenate(
// [w.flatten() for w in model.get_weights()])).tostring(), read back by predict_byom with
// deserialize_as_nd_weights() against the shapes of model_from_json(model_arch).get_weights().

#include "mppdl/train/madlib_model.h"

#include "mppdl/core/error.h"
#include "mppdl/model/keras.h"
#include "train/trained_model_impl.h"

#ifdef MPPDL_WITH_POSTGRES
#include "data/pg_connection.h"
#endif

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <random>
#include <sstream>

namespace mppdl::train {

namespace {

/// `t` (float32, contiguous) appended to the weights in the host's byte order, as numpy writes.
void appendArray(MadlibModel& out, const std::string& name, const torch::Tensor& t) {
    const auto values = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    out.arrays.emplace_back(name, values.sizes().vec());
    out.modelWeights.append(reinterpret_cast<const char*>(values.data_ptr<float>()),
                            size_t(values.numel()) * sizeof(float));
    out.weightCount += values.numel();
}

torch::Tensor parameter(torch::nn::Module& module, const std::string& name) {
    for (const auto& p : module.named_parameters(false))
        if (p.key() == name)
            return p.value();
    return {};
}

/// The Keras JSON with the network's probabilities as its output: MADlib's 'prob' predictions are
/// the model's output, and mppdl's are the softmax of its logits.
std::string withSoftmaxOutput(const std::string& keras) {
    auto j = nlohmann::json::parse(keras);
    auto& layers = j["config"]["layers"];
    if (layers.empty())
        throw InternalError("a Keras model without layers");
    auto& last = layers.back();
    const std::string cls = last["class_name"].get<std::string>();
    auto& activation = last["config"]["activation"];
    if (cls == "Dense" && activation == "linear")
        activation = "softmax";
    else if (!((cls == "Dense" || cls == "Activation") && activation == "softmax"))
        throw ConfigError("the network ends in a " + cls + " layer" +
                          (activation.is_string() ? " with activation " + activation.get<std::string>() : "") +
                          ": MADlib's predictions would be its output, not mppdl's (the softmax of the logits); end "
                          "it in a Dense layer, with or without softmax");
    return j.dump();
}

std::string quoteLiteral(const std::string& text) {
    std::string out = "'";
    for (const char c : text)
        out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
}

std::string hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

/// A dollar-quoted SQL literal whose tag does not occur in `text`.
std::string dollarQuoted(const std::string& text) {
    std::string tag = "$mppdl$";
    for (int i = 2; text.find(tag) != std::string::npos; ++i)
        tag = "$mppdl" + std::to_string(i) + "$";
    return tag + text + tag;
}

/// `table` ([SCHEMA.]TABLE, parts quoted as in SQL) as a quoted, qualified name.
std::string quotedTable(const std::string& table) {
#ifdef MPPDL_WITH_POSTGRES
    return data::quoteQualifiedName(table, "--table");
#else
    const bool plain = !table.empty() && std::all_of(table.begin(), table.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_' || c == '.';
    });
    if (!plain)
        throw ConfigError("--table '" + table + "': a table name is letters, digits, '_' and a '.' after the schema");
    return table;
#endif
}

std::string internalId() {
    std::random_device random;
    std::ostringstream id;
    id << "__mppdl_" << std::hex << random() << random();
    return id.str();
}

} // namespace

MadlibModel toMadlibModel(const TrainedModel& model, const std::string& description) {
    const auto& impl = model.impl();
    if (impl.members.size() != 1)
        throw ConfigError("an ensemble of " + std::to_string(impl.members.size()) +
                          " networks: a MADlib model architecture row holds one Keras model");
    const auto& n = impl.normalizer;
    MadlibModel out;
    if (n.mode == data::Normalizer::Mode::Standardize)
        throw ConfigError("the model standardizes its features (--normalize standardize); MADlib's predict divides the "
                          "rows by one constant (normalizing_const): train with --normalize scale or none");
    out.normalizingConst = n.mode == data::Normalizer::Mode::Scale01 ? n.scale : 1.0;
    out.modelArch = withSoftmaxOutput(model::toKerasJson(model.architecture()));
    out.classValues = model.classNames();
    out.name = model.architecture().name;
    out.description = description;

    const auto& network = impl.members.front();
    const auto& layers = network->analysis().layers;
    model::Shape flattenedFrom; // a Flatten of [C, H, W] before the next Dense
    for (size_t i = 0; i < layers.size(); ++i) {
        const auto& layer = layers[i];
        torch::nn::Module* module = network->layerModule(i);
        if (layer.type == "Flatten") {
            flattenedFrom = !layer.inputShapes.empty() && layer.inputShapes[0].size() == 3 ? layer.inputShapes[0]
                                                                                           : model::Shape{};
        } else if (layer.type == "Conv2D") {
            // torch [out, in, kh, kw] -> Keras [kh, kw, in, out]
            appendArray(out, layer.name + "/kernel", parameter(*module, "weight").permute({2, 3, 1, 0}));
            if (const auto bias = parameter(*module, "bias"); bias.defined())
                appendArray(out, layer.name + "/bias", bias);
        } else if (layer.type == "Dense") {
            auto weight = parameter(*module, "weight"); // [out, in]
            if (!flattenedFrom.empty()) {
                // torch flattened c, h, w; Keras (channels_last) flattens h, w, c.
                const auto& s = flattenedFrom;
                weight = weight.reshape({weight.size(0), s[0], s[1], s[2]})
                             .permute({0, 2, 3, 1})
                             .reshape({weight.size(0), -1});
                flattenedFrom.clear();
            }
            appendArray(out, layer.name + "/kernel", weight.t());
            if (const auto bias = parameter(*module, "bias"); bias.defined())
                appendArray(out, layer.name + "/bias", bias);
        } else if (module && !module->named_parameters(false).is_empty()) {
            throw ConfigError("layer \"" + layer.name + "\" (" + layer.type +
                              ") has weights that mppdl does not write for MADlib");
        }
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    // MADlib reads the host's byte order of its own (x86) servers: little-endian.
    throw ConfigError("MADlib's weights are little-endian float32, and this host is big-endian");
#endif
    return out;
}

namespace {

std::string createStatement(const std::string& table) {
    return "CREATE TABLE IF NOT EXISTS " + table +
           " (model_id INTEGER, model_arch JSON, model_weights bytea, name TEXT, description TEXT, "
           "__internal_madlib_id__ TEXT)";
}

/// The next model_id, as MADlib's load_keras_model() numbers them: the largest so far plus one.
std::string insertStatement(const MadlibModel& model, const std::string& table) {
    return "INSERT INTO " + table +
           " (model_id, model_arch, model_weights, name, description, __internal_madlib_id__)\n"
           "SELECT coalesce(max(model_id), 0) + 1, " +
           dollarQuoted(model.modelArch) + "::json,\n  decode('" + hex(model.modelWeights) + "', 'hex'),\n  " +
           quoteLiteral(model.name) + ", " + quoteLiteral(model.description) + ", " + quoteLiteral(internalId()) +
           "\nFROM " + table + "\nRETURNING model_id";
}

} // namespace

std::string madlibInsertSql(const MadlibModel& model, const std::string& table) {
    std::ostringstream sql;
    sql << "-- " << model.name << " for MADlib: " << model.description << "\n"
        << "-- " << model.weightCount << " float32 weights in " << model.arrays.size()
        << " arrays (Keras get_weights() order):";
    for (const auto& [name, shape] : model.arrays) {
        sql << " " << name << "[";
        for (size_t d = 0; d < shape.size(); ++d)
            sql << (d ? "," : "") << shape[d];
        sql << "]";
    }
    const auto quoted = quotedTable(table);
    sql << "\n" << createStatement(quoted) << ";\n" << insertStatement(model, quoted) << ";\n";
    return sql.str();
}

int64_t insertMadlibModel(const MadlibModel& model, const std::string& connection, const std::string& table) {
#ifdef MPPDL_WITH_POSTGRES
    const std::string where = "table " + table;
    const auto quoted = quotedTable(table);
    data::PgConnection db(connection, where);
    // A table of another make is refused rather than written into; a missing one is created.
    const auto columns = db.query("SELECT count(*) FILTER (WHERE attname IN ('model_id', 'model_arch', "
                                  "'model_weights')), count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) "
                                  "AND attnum > 0 AND NOT attisdropped",
                                  {quoted});
    if (columns.text(0, 1) != "0" && columns.text(0, 0) != "3")
        throw ConfigError(
            table + " in " + db.describe() +
            " is not a MADlib model architecture table (it needs model_id, model_arch and model_weights)");
    db.query("BEGIN");
    db.query(createStatement(quoted));
    db.query("LOCK TABLE " + quoted + " IN EXCLUSIVE MODE"); // two exports never take one model_id
    const auto result = db.query(insertStatement(model, quoted));
    db.query("COMMIT");
    return std::stoll(result.text(0, 0));
#else
    (void)model;
    (void)connection;
    (void)table;
    throw ConfigError("writing to a MADlib table needs PostgreSQL support, and this mppdl was built without it");
#endif
}

std::string madlibPredictCall(const MadlibModel& model, const std::string& table, int64_t modelId) {
    std::string classes;
    for (const auto& c : model.classValues)
        classes += (classes.empty() ? "" : ", ") + quoteLiteral(c);
    std::ostringstream constant;
    constant << model.normalizingConst;
    return "SELECT madlib.madlib_keras_predict_byom('" + table + "', " +
           (modelId > 0 ? std::to_string(modelId) : std::string("MODEL_ID")) +
           ", 'TEST_TABLE', 'id', 'x', 'TEST_TABLE_predictions', 'prob', NULL, ARRAY[" + classes + "], " +
           constant.str() + ");";
}

} // namespace mppdl::train
