#pragma once

#include "mppdl/core/choice.h"
#include "mppdl/data/dataset.h"
#include "mppdl/data/source.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mppdl::data {

/// How raw features become the float32 a network sees. Fitted on the training split only and
/// saved with the model, so evaluation and prediction apply exactly the same transform.
struct Normalizer {
    enum class Mode { None, Scale01, Standardize };

    Mode mode = Mode::Scale01;
    /// Scale01: x / scale (255 for uint8 data, max |x| otherwise).
    double scale = 1.0;
    /// Standardize: per channel (dim 0 of the sample shape, so per feature for tabular {F} rows),
    /// applied after scaling by `scale`; population std, 1 for a constant channel.
    std::vector<double> mean;
    std::vector<double> std;
    /// How the source's columns became the raw features (a CSV's text columns one-hot): applied
    /// by the reader (SourceOptions::encoding) before this normalization; saved with it, so that
    /// a model reads new rows as it read its training rows. fit() leaves it empty.
    ColumnEncoding encoding;

    /// Computes the parameters from training data; DataError when it is empty (except Mode::None).
    static Normalizer fit(Mode mode, const Dataset& train);
    /// The same on the training rows of every process of a run, each holding `train` (see
    /// computeStatistics(Dataset, Reduce)).
    static Normalizer fit(Mode mode, const Dataset& train, const Reduce& reduce);
    /// fit(mode, train.select(rows), reduce), to every digit, without a copy of the rows.
    static Normalizer fit(Mode mode, const Dataset& train, const at::Tensor& rows, const Reduce& reduce);
    /// The same of rows read on demand (a table streamed from its server), to every digit.
    static Normalizer fit(Mode mode, const RowSet& train, const Reduce& reduce);
    /// float32 features, normalized; DataError when the channel count differs from the fitted one.
    Dataset apply(const Dataset& dataset) const;
    /// apply(dataset.select(rows)) without a raw copy of those rows: uint8 rows are gathered and
    /// converted in chunks straight into the float32 result.
    Dataset apply(const Dataset& dataset, const at::Tensor& rows) const;
    /// Where applyChunks() puts rows [begin, end) of its result: a float32 tensor of that many rows
    /// of the sample shape, filled before the next call.
    using ChunkTarget = std::function<at::Tensor(int64_t begin, int64_t end)>;
    /// The features of `rows` (undefined: all) normalized a chunk at a time into `target`: the same
    /// values as apply(), to every digit, whether the chunks stay in memory or go to a file.
    void applyChunks(const Dataset& dataset, const at::Tensor& rows, const ChunkTarget& target) const;
};

/// A normalization as the CLI, the GUI and a run's configuration name it.
struct NormalizationKind {
    Normalizer::Mode mode;
    Choice choice;
};

/// The one table of normalizations, the default (scale) first.
const std::vector<NormalizationKind>& normalizations();
const std::vector<Choice>& normalizationChoices();

/// A normalizations() name ("scale", "standardize", "none"); throws ConfigError for anything else.
Normalizer::Mode parseNormalization(const std::string& name);
const char* toString(Normalizer::Mode mode);

/// Where the rows of one process of a multi-process run that read only its own rows (see
/// planRankRows()) sit in the run.
struct LocalRows {
    int rank = 0, world = 1;
    /// Per segment of the run: for this process's segments, positions into PreparedData::train of
    /// the segment's rows, ascending; empty for the other processes' segments.
    std::vector<std::vector<int64_t>> segmentRows;
    std::vector<int64_t> segmentSizes;                       ///< every segment's rows
    int64_t trainRows = 0, validationRows = 0, testRows = 0; ///< the whole run's
    /// Whether the validation and test rows here are this process's share (their figures are
    /// summed over the processes), or all of them.
    bool sharedEvaluation = true;
};

/// Where a run keeps its prepared rows, and why: what the "data:" message and the run's record say.
struct Residence {
    /// In memory, or out of core: files of packed rows under a cache directory, memory-mapped,
    /// their minibatches' rows read ahead by a prefetch thread.
    bool outOfCore = false;
    std::string why;      ///< "188 MB of packed rows fit the memory budget of 11 GB (--memory-budget 12G)"
    std::string cacheDir; ///< out of core: the cache entry's directory ("" once removed: a table's)
    bool reused = false;  ///< out of core: the entry an earlier run built
    /// --no-cache: the training rows are read from the server again every epoch (PreparedData::stream).
    bool streamed = false;
    int64_t packedBytes = 0, budgetBytes = 0;
    /// "in memory", "out of core (cache reused)" or "streamed every epoch", as `mppdl show` and
    /// the run's record put it.
    std::string mode() const {
        if (streamed)
            return "streamed every epoch";
        return outOfCore ? (reused ? "out of core (cache reused)" : "out of core") : "in memory";
    }
};

/// Training rows a run does not keep: read from their source again for every epoch, a block of
/// rows at a time (a pg: table with --no-cache). Positions are those of PreparedData::train.
class RowStream {
public:
    virtual ~RowStream() = default;
    /// The order in which a segment visits `rows` (ascending positions) in epoch `epoch` (0-based):
    /// the blocks in a seeded order, the same for every segment, and the segment's rows of each
    /// block in a seeded order of their own. The same for the same seed, epoch, segment and rows.
    virtual at::Tensor epochOrder(int epoch, int segment, const at::Tensor& rows) = 0;
    /// The normalized rows at `positions`, reading blocks from the source as they are needed
    /// (callable from several threads at once).
    virtual Dataset gather(const at::Tensor& positions) = 0;
    /// What has been read from the source so far: rows, and their feature bytes.
    virtual int64_t rowsRead() const = 0;
    virtual int64_t bytesRead() const = 0;
};

/// Training, validation and test sets, normalized and ready for the trainer.
struct PreparedData {
    Dataset train;
    Dataset validation; ///< empty when the validation fraction is 0
    Dataset test;       ///< the source's own test split; empty when it has none
    Normalizer normalizer;
    /// Set when this process read only its own rows: then train holds only its segments' rows.
    std::shared_ptr<const LocalRows> local;
    /// What this process read of the source: rows and their packed feature bytes.
    int64_t rowsRead = 0, bytesRead = 0;
    Residence residence;
    /// --no-cache: where the training rows come from, every epoch; `train` then holds no rows,
    /// only their shape and classes.
    std::shared_ptr<RowStream> stream;
};

/// Splits a seeded random `validationFraction` (in [0, 1)) of the training rows off for validation,
/// fits the normalizer on what is left, and applies it to all three sets. The split depends only on
/// the seed and the row count (same on every platform); both parts keep the source's row order.
/// A source passed by std::move gives its rows back as soon as their prepared copies are made, so
/// that preparing holds little more than the source and its float32 copy.
PreparedData prepare(LoadedSource source, double validationFraction, uint64_t seed, Normalizer::Mode mode);

} // namespace mppdl::data
