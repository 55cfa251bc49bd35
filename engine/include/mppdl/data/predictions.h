#pragma once

// What a model says about rows, and writing it back to a PostgreSQL table.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mppdl::data {

struct Predictions {
    int64_t rows = 0;
    int64_t classes = 0;
    std::vector<float> probabilities; ///< rows x classes, row-major
    std::vector<int64_t> predicted;   ///< the most probable class of each row
    int segments = 1;                 ///< shards predicted side by side to make them
};

/// What --if-exists does with an output table that is already there.
enum class IfExists { Fail, Replace, Append };
/// "fail", "replace", "append"; ConfigError otherwise.
IfExists parseIfExists(const std::string& text);

class PgConnection;

/// Predictions written to a table as they come, chunk by chunk, in one transaction: the table
/// appears, is replaced or grows only at commit(); a failure or a destruction before it leaves
/// nothing behind. Opened first, so that a table that cannot be written fails before any work.
class PredictionTable {
public:
    /// `ids`: whether the rows have ids (written as text cast to `idType`), else 1-based positions.
    PredictionTable(const std::string& connection, const std::string& table, IfExists ifExists, bool ids,
                    const std::string& idType);
    ~PredictionTable();
    PredictionTable(const PredictionTable&) = delete;
    PredictionTable& operator=(const PredictionTable&) = delete;

    /// The rows of `predictions` (one COPY); without ids, numbered from `firstRow` + 1.
    void append(const Predictions& predictions, const std::vector<std::string>& classNames,
                const std::vector<std::string>& ids, int64_t firstRow);
    /// Commits; the rows written.
    int64_t commit();

private:
    std::unique_ptr<PgConnection> m_db;
    std::string m_name;
    bool m_ids = false, m_open = false;
    int64_t m_rows = 0;
};

/// Part `part` of a prediction written by several processes: a table beside `table` (its schema),
/// named "<table>_mppdl_part_<part>", quoted.
std::string partTableName(const std::string& table, int part);

/// Moves the rows of parts 0 to `parts` - 1 into `table` in part order and drops the parts, in one
/// transaction: the table appears (is replaced, or grows) with every part's rows or not at all.
/// Returns the rows. ConfigError when the table exists and `ifExists` is Fail.
int64_t mergePredictionParts(const std::string& connection, const std::string& table, IfExists ifExists, int parts);

/// Drops the part tables of `table` that exist (what a failed prediction left).
void dropPredictionParts(const std::string& connection, const std::string& table, int parts);

/// Writes one row per prediction to `table` ("TABLE" or "SCHEMA.TABLE") as (id, predicted_index,
/// predicted_class, probabilities real[]), with COPY, in one transaction: a failure leaves nothing
/// behind (no table, or the appended-to table as it was). `ids` empty: the ids are the rows' 1-based
/// positions (bigint); else they are written as text cast to `idType` (the source's id column type).
/// Returns the rows written. ConfigError when the table exists and `ifExists` is Fail; DataError
/// with the server's message otherwise.
int64_t writePredictions(const std::string& connection, const std::string& table, IfExists ifExists,
                         const Predictions& predictions, const std::vector<std::string>& classNames,
                         const std::vector<std::string>& ids, const std::string& idType);

} // namespace mppdl::data
