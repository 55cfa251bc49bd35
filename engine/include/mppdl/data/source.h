#pragma once

#include "mppdl/data/dataset.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mppdl::data {

/// Where Debian's dataset-fashion-mnist package puts Fashion-MNIST (IDX gz files): the demo's data
/// and the workbench's first offer.
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Some rows of a source: 0-based ordinals of its training rows and of its test rows, ascending, as
/// a whole read numbers them (after the limit). What one process of a multi-process run reads.
struct RowSelection {
    std::vector<int64_t> train;
    std::vector<int64_t> test;
};

/// How a CSV's columns become a row's features when they are not all numbers, or not all used:
/// the feature columns by name, in order, a text column one feature per category (one-hot).
/// Fitted on the training rows (SourceOptions::fitRows), kept with the model (the normalizer's
/// `encoding`) and applied as fitted when it reads new rows (SourceOptions::encoding): a value the
/// training rows did not have gets zeros in its column's features, as scikit-learn's
/// OneHotEncoder(handle_unknown="ignore") does, and the read says how many rows had one.
struct ColumnEncoding {
    struct Column {
        std::string name; ///< the header's name ("3" for the column at index 3 of a file without one)
        bool categorical = false;
        std::vector<std::string> categories; ///< categorical: sorted; one feature each
    };
    std::vector<Column> columns; ///< the feature columns; empty: every column but the label, as numbers
    bool empty() const { return columns.empty(); }
    /// Features a row has: a number column gives one, a categorical column one per category.
    int64_t width() const;
    /// Each feature's name: the column's, or "column=category" for a categorical one.
    std::vector<std::string> featureNames() const;
    /// "id ignored; region: 4 categories (east, north, south, west); 6 numbers" style summary.
    std::string describe() const;
};

/// How to read a source. Every field has a default that suits the common case; the CLI's flags
/// and the GUI's dataset dialog map onto this one struct.
struct SourceOptions {
    /// One of sourceKinds()' names, or "auto" to detect from the path (extension, directory layout).
    std::string kind = "auto";
    /// CSV: the label column: digits are a 0-based index, other text a header name ("name:4" and
    /// "index:4" force either); empty means the last column.
    /// (Error messages name columns by the same 0-based index.)
    /// NPY: path of the labels .npy file (empty: "<name>_labels.npy" or y.npy beside X.npy).
    /// IDX: path of the labels file (empty: the images file's name with "labels" for "images").
    std::string label;
    /// Rows without labels are welcome (what predict reads): a CSV without the label column (with
    /// exactly `expectedFeatures` columns, or without the column --label names), an IDX or NPY
    /// file without a labels file, a table without the label column are read unlabeled
    /// (Dataset::labeled() false) instead of refused.
    bool labelsOptional = false;
    /// Features a row has for the model that reads it (the product of its input shape; 0 when
    /// unknown): with labelsOptional, a CSV of exactly this many columns has no label column.
    int64_t expectedFeatures = 0;
    /// Rows with a NaN or infinite feature: "fail" (a DataError naming the row, by its id where
    /// there is one, and the column) or "skip" (left out, counted in LoadedSource::badRows).
    std::string onBadRows = "fail";
    /// CSV: whether the first row is a header; unset means detect (a row with a non-numeric field
    /// where the next row is numeric; a first row of the row count, the feature count and class
    /// names, as scikit-learn's CSV files begin, is recognised and its class names used).
    std::optional<bool> header;
    /// CSV: records passed over before the header or the data (notes, a title).
    int64_t skipRows = 0;
    char delimiter = ',';
    /// Declared per-sample shape: CSV/NPY features are reshaped to it (e.g. {1,28,28});
    /// image folders are decoded to it ({C,H,W}, C 1 or 3, images resized to HxW). Image folders
    /// without one take the first image's size, with 1 channel if it is grey and 3 otherwise.
    std::vector<int64_t> shape;
    /// Where a sample's channels are in the rows as the source keeps them: "chw" (channels first,
    /// the engine's layout) or "hwc" (height x width x channels, as Keras and MADlib keep images).
    /// 3-D hwc samples are transposed to chw once, at load. Empty: chw, unless the trainer sets the
    /// layout of the network's Input (an architecture imported from Keras reads hwc).
    std::string layout;
    /// PostgreSQL: how the table holds its rows: "rows" (one sample per row), "madlib-packed" (the
    /// output of MADlib's training_preprocessor_dl: buffers of many rows per tuple, one-hot labels,
    /// a TABLE_summary table with the class values and the normalizing constant) or empty to
    /// detect (a table with buffer_id, independent_var and dependent_var and a summary table is
    /// packed).
    std::string tableFormat;
    /// Read at most this many training rows (0 = all), for quick tries. File formats keep the first
    /// rows; image folders take one image of each class in turn so that every class is seen.
    int64_t limit = 0;
    /// PostgreSQL (pg:TABLE): a libpq URI or keyword string; empty uses the PG* environment
    /// variables. A password in it is used, never recorded (see connectionWithoutPassword()).
    std::string connection;
    /// The feature columns. CSV: names or 0-based indices (the --label rule), in the file's order,
    /// empty: every column but the label. PostgreSQL: one array or bytea column, or numeric
    /// columns; empty chooses the one array/bytea column, else every numeric column but the label
    /// and id.
    std::vector<std::string> features;
    /// Columns that are not features (an id, a note), CSV and PostgreSQL alike.
    std::vector<std::string> ignore;
    /// CSV: columns read as categories (one-hot), numbers or not; a column of text is detected as
    /// one without being named.
    std::vector<std::string> categorical;
    /// CSV: the encoding a model was trained with, applied instead of fitting one (predict, eval):
    /// the same columns, by name where the file has a header, the same categories.
    std::shared_ptr<const ColumnEncoding> encoding;
    /// CSV: the rows (0-based ordinals of the source's training rows, ascending) a categorical
    /// column's categories are taken from, given the row count: the run's training rows, without
    /// its validation and test rows. Unset: every row.
    std::function<std::vector<int64_t>(int64_t rows)> fitRows;
    /// Flat rows (CSV, NPY, a table's array or numbers) whose width is this shape's product are
    /// reshaped to it when `shape` is not given, and the read says so: the input shape of the
    /// network that reads them (a 784-value real[] for a 1x28x28 network).
    std::vector<int64_t> flatShape;
    /// A source without a test split of its own gets one: a seeded random fraction of its
    /// training rows (in [0, 1); 0: none), drawn by `testSeed` before anything else is split off.
    double testFraction = 0;
    uint64_t testSeed = 0;
    /// PostgreSQL: an id column; rows are read in its order (within each segment's shard).
    std::string id;
    /// PostgreSQL: read the rows as this many segments' shards, each over a connection of its own,
    /// in parallel, each row marked with its segment (Dataset::homeSegments()): Greenplum's
    /// gp_segment_id, or hash(distribution key) mod N. 0 reads one stream. The trainer sets it for
    /// the "database" distribution.
    int segments = 0;
    /// PostgreSQL: the distribution key column hashed into segments (empty: the id column; on
    /// Greenplum a table without one is read by gp_segment_id).
    std::string distributedBy;
    /// PostgreSQL: what a bytea feature column holds: "uint8" pixels or packed little-endian "float32".
    std::string bytea = "uint8";
    /// Told now and then (at most every `progressSeconds`, so never for a quicker read) how many
    /// rows have been read (in steps of 256) and how many are expected (the planner's estimate, or
    /// the limit; 0 when unknown). Called on the thread that called loadSource(). PostgreSQL only.
    std::function<void(int64_t rows, int64_t expected)> progress;
    double progressSeconds = 2.0;
    /// Read only these rows (null: all). Every row's label is still read (LoadedSource::allLabels),
    /// so class names and the label-based distribution are those of the whole source; features are
    /// decoded, and for raw IDX and NPY files read, only for the selected rows. PostgreSQL read as
    /// `segments` shards takes `shards` instead.
    std::shared_ptr<const RowSelection> rows;
    /// PostgreSQL read as `segments` shards: read only these shards (empty: all), over one
    /// connection each; the others are only counted (LoadedSource::shardRows).
    std::vector<int> shards;
};

/// A libpq connection string or URI as a keyword string without its password: what may be
/// written to a project file or a log.
std::string connectionWithoutPassword(const std::string& connection);

/// A loaded source: the training rows and, when the source has one, its own test split.
struct LoadedSource {
    std::string kind;
    std::string location;
    Dataset train;
    Dataset test; ///< empty() when the source has no test split
    /// The training rows' ids as text, when the source has an id column (PostgreSQL --id); what
    /// predictions written back are keyed by. `idType` is the column's SQL type.
    std::vector<std::string> ids;
    std::string idType;
    Schema schema() const;

    /// A read of some rows (SourceOptions::rows or ::shards): the whole source's row counts, every
    /// training row's label (int64, by ordinal), and for a table read as shards, each shard's rows.
    /// `train` and `test` then hold only the selected rows, in ordinal order. Unset otherwise.
    int64_t sourceTrainRows = -1, sourceTestRows = -1;
    std::vector<int64_t> allLabels;
    std::vector<int64_t> shardRows;
    /// What the read decoded: rows and their feature bytes (payload, as packed).
    int64_t rowsRead = 0, bytesRead = 0;
    /// Rows left out for a NaN or infinite feature (SourceOptions::onBadRows "skip").
    int64_t badRows = 0;
    /// The feature columns' names in feature order, where the source has them (a CSV's header, a
    /// table's numeric columns); empty otherwise. What errors name a column by.
    std::vector<std::string> featureNames;
    /// How the columns became features (empty: every column but the label, as numbers).
    ColumnEncoding encoding;
    /// Where the source kept a sample's channels: "chw" or "hwc" (transposed to chw at load);
    /// empty for samples that are not 3-D.
    std::string layout;
    /// What the read decided that the user should know ("line 1 taken as the header (...)"):
    /// printed by the commands that read the source.
    std::vector<std::string> notes;
};

/// One kind of data source. The list in sources.cpp is the one place the CLI's help, the GUI and
/// auto-detection read.
struct SourceKind {
    const char* name;
    const char* description;
    /// Whether this kind claims the path (auto-detection); checked in table order.
    bool (*detect)(const std::string& location);
    LoadedSource (*load)(const std::string& location, const SourceOptions& options);
    /// Whether the location is a path (checked to exist first); false for database tables.
    bool readsFiles = true;
};

const std::vector<SourceKind>& sourceKinds();

/// Whether a loaded source of this kind (a sourceKinds() name) came from files, as opposed to a
/// database table: what its location means and whether it has its own test split.
bool readsFiles(const std::string& kind);

/// Loads a source. Throws DataError naming the file (and line/column for text formats) on bad
/// data, ConfigError on options that do not fit the source (unknown kind, missing label column).
LoadedSource loadSource(const std::string& location, const SourceOptions& options = {});

/// What a source holds, read without its features (a selection of no rows): the row counts
/// (sourceTrainRows, sourceTestRows), every training row's label, and `train` and `test` without
/// rows but with the sample shape and type (learnt from one row where the kind needs one). A kind
/// that cannot read selected rows (a pg: table without --id) reads everything: sourceTrainRows < 0.
LoadedSource planSource(const std::string& location, const SourceOptions& options);

} // namespace mppdl::data
