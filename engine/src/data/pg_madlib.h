#pragma once

// Internal: MADlib's packed tables as a pg: source. training_preprocessor_dl() and
// validation_preprocessor_dl() write a table of buffers, each many rows packed into one tuple:
// the features as a bytea of float32 (already multiplied by 1/normalizing_const), the labels
// one-hot as a bytea of int16, their shapes ([rows, ...] and [rows, classes]) and a buffer_id,
// beside a TABLE_summary table with the class values and the normalizing constant.

#include "data/pg_connection.h"

#include "mppdl/data/source.h"

#include <optional>
#include <string>
#include <vector>

namespace mppdl::data {

/// Where a packed table keeps what mppdl reads.
struct MadlibPacked {
    std::string table;   ///< quoted, qualified
    std::string summary; ///< the summary table as written ("cifar_batched_summary")
    /// The packed columns: MADlib 2 names them after the source's columns (x, y, x_shape,
    /// y_shape), MADlib 1.17-1.21 independent_var, dependent_var and their _shape.
    std::string x, y, xShape, yShape;
    std::string classColumn;              ///< the summary's column of class values
    std::vector<std::string> classValues; ///< as text; "NULL" for the NULLs num_classes pads with
    double normalizingConst = 1;
    int64_t bufferSize = 0; ///< the summary's buffer_size (0: unknown): rows a buffer holds at most
};

/// The packed layout of table `name` (as written after "pg:"; `columns` its column names), or
/// nullopt when it is an ordinary table. SourceOptions::tableFormat "madlib-packed" demands one
/// (a ConfigError naming what is missing), "rows" never looks, empty detects: a summary table
/// with a normalizing_const and the packed columns the summary names.
std::optional<MadlibPacked> madlibPackedLayout(PgConnection& db, const std::string& name,
                                               const std::vector<std::string>& columns, const SourceOptions& options,
                                               const std::string& where);

/// Reads a packed table's rows, unpacked, with the summary's class values as the class names and
/// the features multiplied back by the normalizing constant (the source's own values, which the
/// run then normalizes as it does any source's, and which MADlib's predict takes unpacked). Read
/// as SourceOptions::segments shards, a shard holds whole buffers (hash of buffer_id mod N, or
/// Greenplum's segments) and each process reads only its own (SourceOptions::shards).
LoadedSource loadMadlibPacked(PgConnection& db, const MadlibPacked& packed, const SourceOptions& options,
                              const std::string& where);

} // namespace mppdl::data
