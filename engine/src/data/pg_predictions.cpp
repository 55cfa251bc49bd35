#include "mppdl/data/predictions.h"

#include "data/pg_connection.h"

#include "mppdl/core/error.h"
#include "mppdl/data/catalog.h"

#include <cstdio>

namespace mppdl::data {

IfExists parseIfExists(const std::string& text) {
    if (text == "fail")
        return IfExists::Fail;
    if (text == "replace")
        return IfExists::Replace;
    if (text == "append")
        return IfExists::Append;
    throw ConfigError("--if-exists must be fail, replace or append, got '" + text + "'");
}

namespace {

/// In an open transaction: fails, drops or keeps an output table that exists (`ifExists`), and
/// creates it with `columns` ("(...)" or "(LIKE other)") unless it is appended to.
void openOutputTable(PgConnection& db, const std::string& name, const std::string& where, IfExists ifExists,
                     const std::string& columns) {
    const bool exists = !db.query("SELECT to_regclass($1)", {name}).isNull(0, 0);
    if (exists && ifExists == IfExists::Fail)
        throw ConfigError(where + " already exists in " + db.describe() +
                          " (--if-exists replace to overwrite it, append to add rows)");
    if (exists && ifExists == IfExists::Replace)
        db.query("DROP TABLE " + name);
    if (!exists || ifExists == IfExists::Replace)
        db.query("CREATE TABLE " + name + " " + columns);
}

} // namespace

std::string partTableName(const std::string& table, int part) {
    const auto name = parseQualifiedName(table, "output table " + table);
    return (name.schema.empty() ? "" : quoteIdentifier(name.schema) + ".") +
           quoteIdentifier(name.table + "_mppdl_part_" + std::to_string(part));
}

int64_t mergePredictionParts(const std::string& connection, const std::string& table, IfExists ifExists, int parts) {
    const std::string where = "output table " + table;
    const std::string name = quoteQualifiedName(table, where);
    PgConnection db(connection, where);
    db.query("BEGIN");
    openOutputTable(db, name, where, ifExists, "(LIKE " + partTableName(table, 0) + ")");
    int64_t rows = 0;
    for (int part = 0; part < parts; ++part) {
        const std::string from = partTableName(table, part);
        rows += std::stoll(db.query("SELECT count(*) FROM " + from).text(0, 0));
        db.query("INSERT INTO " + name + " SELECT * FROM " + from);
        db.query("DROP TABLE " + from);
    }
    db.query("COMMIT");
    return rows;
}

void dropPredictionParts(const std::string& connection, const std::string& table, int parts) {
    PgConnection db(connection, "output table " + table);
    for (int part = 0; part < parts; ++part)
        db.query("DROP TABLE IF EXISTS " + partTableName(table, part));
}

PredictionTable::PredictionTable(const std::string& connection, const std::string& table, IfExists ifExists, bool ids,
                                 const std::string& idType)
    : m_ids(ids) {
    const std::string where = "output table " + table;
    m_name = quoteQualifiedName(table, where);
    m_db = std::make_unique<PgConnection>(connection, where);
    // One transaction: the table appears, is replaced or grows only if every row made it.
    m_db->query("BEGIN");
    m_open = true;
    // The id keeps the source's type (so the table joins back to it); a SQL type name from the
    // catalog, checked by the server like any type name.
    const std::string type = !ids ? "bigint" : idType.empty() ? "text" : idType;
    openOutputTable(*m_db, m_name, where, ifExists,
                    "(id " + type + ", predicted_index integer, predicted_class text, probabilities real[])");
}

PredictionTable::~PredictionTable() {
    if (m_open) {
        try {
            m_db->query("ROLLBACK");
        } catch (const Error&) {
            // The connection closes next; the server rolls back what it had.
        }
    }
}

void PredictionTable::append(const Predictions& p, const std::vector<std::string>& classNames,
                             const std::vector<std::string>& ids, int64_t firstRow) {
    if (m_ids != !ids.empty() || (!ids.empty() && int64_t(ids.size()) != p.rows))
        throw InternalError("predictions for " + std::to_string(p.rows) + " rows with " + std::to_string(ids.size()) +
                            " ids");
    std::string text;
    text.reserve(size_t(p.rows) * size_t(p.classes) * 12 + size_t(p.rows) * 32);
    char number[32];
    for (int64_t r = 0; r < p.rows; ++r) {
        text += ids.empty() ? std::to_string(firstRow + r + 1) : copyText(ids[size_t(r)]);
        const int64_t k = p.predicted[size_t(r)];
        text += '\t' + std::to_string(k) + '\t' + copyText(classNames.at(size_t(k))) + "\t{";
        for (int64_t c = 0; c < p.classes; ++c) {
            std::snprintf(number, sizeof number, c ? ",%.7g" : "%.7g",
                          double(p.probabilities[size_t(r * p.classes + c)]));
            text += number;
        }
        text += "}\n";
    }
    m_db->copyIn("COPY " + m_name + " (id, predicted_index, predicted_class, probabilities) FROM STDIN", text);
    m_rows += p.rows;
}

int64_t PredictionTable::commit() {
    m_db->query("COMMIT");
    m_open = false;
    return m_rows;
}

int64_t writePredictions(const std::string& connection, const std::string& table, IfExists ifExists,
                         const Predictions& p, const std::vector<std::string>& classNames,
                         const std::vector<std::string>& ids, const std::string& idType) {
    if (!ids.empty() && int64_t(ids.size()) != p.rows)
        throw InternalError("predictions for " + std::to_string(p.rows) + " rows with " + std::to_string(ids.size()) +
                            " ids");
    PredictionTable out(connection, table, ifExists, !ids.empty(), idType);
    out.append(p, classNames, ids, 0);
    return out.commit();
}

} // namespace mppdl::data
