#pragma once

// A trained model as a row of a MADlib model architecture table, which MADlib's
// madlib_keras_predict_byom() (and madlib_keras_fit's warm start) read: the Keras model JSON in
// model_arch and the weights in model_weights as MADlib's madlib_keras_serializer writes them,
// float32 in the host's byte order (little-endian), every array of Keras' get_weights() in layer
// order, each flattened in C order: a Conv2D's kernel [kh, kw, in, out] (HWIO) then its bias, a
// Dense's kernel [in, out] then its bias; layers without weights add none.

#include "mppdl/train/trained_model.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mppdl::train {

struct MadlibModel {
    std::string modelArch;    ///< Keras JSON; the last Dense ends in softmax (MADlib's 'prob')
    std::string modelWeights; ///< the bytes of model_weights
    /// Each array of get_weights() in order: "conv1/kernel" and its Keras shape.
    std::vector<std::pair<std::string, std::vector<int64_t>>> arrays;
    int64_t weightCount = 0;
    /// What predict_byom's normalizing_const must be: the model's scale (255 for pixels), 1 for
    /// a model trained without normalization.
    double normalizingConst = 1;
    std::vector<std::string> classValues;
    std::string name;        ///< the architecture's
    std::string description; ///< "mppdl run 3, epoch 5" style, from the caller
};

/// The model as MADlib keeps it. ConfigError for what MADlib's predict cannot reproduce: an
/// ensemble, standardized features (MADlib divides by one constant), an architecture Keras'
/// Sequential cannot say (toKerasJson()'s errors), a last activation other than softmax or none.
/// A Dense after a Flatten of a [C, H, W] tensor has its kernel's rows permuted into Keras'
/// channels-last flattening order (h, w, c).
MadlibModel toMadlibModel(const TrainedModel& model, const std::string& description);

/// SQL that creates the table if it is missing (MADlib's columns: model_id INTEGER, model_arch
/// JSON, model_weights bytea, name TEXT, description TEXT, __internal_madlib_id__ TEXT) and adds
/// the model as the next model_id, as MADlib's load_keras_model() does; for psql or any client.
std::string madlibInsertSql(const MadlibModel& model, const std::string& table);

/// Runs madlibInsertSql() over `connection` (libpq's URI or keywords) and returns the new
/// model_id. ConfigError for a table without MADlib's columns; DataError from the server.
int64_t insertMadlibModel(const MadlibModel& model, const std::string& connection, const std::string& table);

/// The madlib_keras_predict_byom() call that predicts `testTable`'s `column` (REAL[], height x
/// width x channels) with the row (MODEL_ID for 0: not known yet), for the user to run.
std::string madlibPredictCall(const MadlibModel& model, const std::string& table, int64_t modelId);

} // namespace mppdl::train
