#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace at {
class Tensor;
}

namespace mppdl::data {

/// A labelled set of samples held as two packed tensors: features [N, ...sampleShape] (uint8 as
/// loaded from images, float32 after normalization) and labels [N] int64 in [0, classes).
/// Cheap to copy (shared, immutable); slice() and select() copy rows, so a subset never aliases
/// the set it came from.
class Dataset {
public:
    Dataset();
    /// Takes the tensors as they are; checks that the row counts agree and labels are int64 in
    /// range (InternalError otherwise). Empty `classNames` become "0".."max label". Labels that
    /// are all -1 make unlabeled rows (labeled() false): rows read only to be predicted.
    Dataset(const at::Tensor& features, const at::Tensor& labels, std::vector<std::string> classNames);

    bool empty() const;
    int64_t size() const;
    /// Shape of one sample, e.g. {1, 28, 28} for images or {F} for tabular rows.
    std::vector<int64_t> sampleShape() const;
    /// "uint8" or "float32".
    std::string dtype() const;
    const std::vector<std::string>& classNames() const;
    int64_t numClasses() const;

    const at::Tensor& features() const;
    const at::Tensor& labels() const;
    /// False for rows read without labels (SourceOptions::labelsOptional): every label is -1, and
    /// nothing may train on them or measure accuracy with them.
    bool labeled() const;
    /// The same rows without their labels.
    Dataset withoutLabels() const;

    /// Rows [begin, end), clamped to [0, size()].
    Dataset slice(int64_t begin, int64_t end) const;
    /// Rows at the given indices (an int64 tensor).
    Dataset select(const at::Tensor& indices) const;
    /// The same rows with other features (after preprocessing).
    Dataset withFeatures(const at::Tensor& features) const;

    /// Where the source keeps each row: int64 [size()] segment numbers, for a database table read
    /// as its segments' shards (Greenplum's gp_segment_id, or hash(key) mod N); undefined for
    /// sources without segments. slice(), select() and withFeatures() carry it along.
    const at::Tensor& homeSegments() const;
    /// The same rows with their home segments (InternalError unless int64 with one per row).
    Dataset withHomeSegments(const at::Tensor& segments) const;

private:
    struct Impl;
    std::shared_ptr<const Impl> m_impl;
};

/// What a source holds, reported before any training: per-sample shape, dtype, classes, rows.
struct Schema {
    std::vector<int64_t> sampleShape;
    std::string dtype;
    std::vector<std::string> classNames;
    int64_t trainRows = 0;
    int64_t testRows = 0; ///< 0 when the source has no test split
};

/// Statistics of a dataset: class histogram and per-channel moments of the raw features.
struct Statistics {
    std::vector<int64_t> classCounts;
    std::vector<double> channelMean; ///< one per channel: dim 0 of the sample shape (features of {F} rows)
    std::vector<double> channelStd;  ///< population standard deviation
    double min = 0;
    double max = 0;
};

Statistics computeStatistics(const Dataset& dataset);

/// Sums (or, with `max`, maximums) a CPU float64 tensor in place over the processes of a run:
/// what makes a statistic of rows spread over processes that of all of them.
using Reduce = std::function<void(at::Tensor& values, bool max)>;

/// The statistics of the rows of every process, each holding `dataset` (possibly empty): every
/// process calls it, and `reduce` the same number of times on each.
Statistics computeStatistics(const Dataset& dataset, const Reduce& reduce);
/// computeStatistics(dataset.select(rows), reduce), to every digit, without a copy of the rows:
/// they are gathered a chunk at a time (`rows` undefined: all of them).
Statistics computeStatistics(const Dataset& dataset, const at::Tensor& rows, const Reduce& reduce);

struct RowSet; // row_set.h: rows read on demand

/// The rows `rows` (undefined: all) of `dataset` as a RowSet that gathers them a chunk at a time.
RowSet rowSetOf(const Dataset& dataset, const at::Tensor& rows);

/// computeStatistics() of rows read on demand: the same figures, to every digit, as of a dataset
/// holding them.
Statistics computeStatistics(const RowSet& rows, const Reduce& reduce);

/// "1x28x28".
std::string formatShape(const std::vector<int64_t>& shape);

} // namespace mppdl::data
