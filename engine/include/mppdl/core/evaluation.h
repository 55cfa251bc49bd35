#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mppdl {

/// Accuracy, loss and per-class results of a model on one dataset.
struct Evaluation {
    std::string split; ///< "validation", "test", or a source name
    int64_t samples = 0;
    double loss = 0;
    double accuracy = 0; ///< fraction in [0, 1]
    std::vector<std::string> classNames;
    std::vector<double> perClassAccuracy; ///< NaN-free: a class with no samples has 0
    std::vector<int64_t> perClassCount;
    /// numClasses x numClasses, row-major; row = true class, column = predicted class.
    std::vector<int64_t> confusion;

    int64_t numClasses() const { return int64_t(classNames.size()); }
};

} // namespace mppdl
