#pragma once

// Shared by the trainer's tests: bundled architectures and small real Fashion-MNIST subsets.

#include "mppdl/data/preprocess.h"
#include "mppdl/data/source.h"
#include "mppdl/model/architecture.h"

#include <string>

inline mppdl::model::Architecture bundledArchitecture(const std::string& name) {
    return mppdl::model::loadArchitecture(std::string(MPPDL_SOURCE_DIR) + "/resources/architectures/" + name +
                                          ".json");
}

/// The first `rows` training images of Fashion-MNIST, split with `validationFraction` and `seed`,
/// scaled to [0, 1], with the first `testRows` of the test split.
inline mppdl::data::PreparedData fashionSubset(int64_t rows, double validationFraction, uint64_t seed,
                                              int64_t testRows) {
    mppdl::data::SourceOptions options;
    options.limit = rows;
    const auto source = mppdl::data::loadSource(MPPDL_FASHION_MNIST_DIR, options);
    auto p = mppdl::data::prepare(source, validationFraction, seed, mppdl::data::Normalizer::Mode::Scale01);
    p.test = p.test.slice(0, testRows);
    return p;
}
