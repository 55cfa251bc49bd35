#include "mppdl/data/predictions.h"

#include "data/pg_connection.h"

#include "mppdl/core/error.h"

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

int64_t writePredictions(const std::string& connection, const std::string& table, IfExists ifExists,
                         const Predictions& p, const std::vector<std::string>& classNames,
                         const std::vector<std::string>& ids, const std::string& idType) {
    const std::string where = "output table " + table;
    const std::string name = quoteQualifiedName(table, where);
    if (!ids.empty() && int64_t(ids.size()) != p.rows)
        throw InternalError("predictions for " + std::to_string(p.rows) + " rows with " + std::to_string(ids.size()) +
                            " ids");
    PgConnection db(connection, where);
    // One transaction: the table appears, is replaced or grows only if every row made it.
    db.query("BEGIN");
    const bool exists = !db.query("SELECT to_regclass($1)", {name}).isNull(0, 0);
    if (exists && ifExists == IfExists::Fail)
        throw ConfigError(where + " already exists in " + db.describe() +
                          " (--if-exists replace to overwrite it, append to add rows)");
    if (exists && ifExists == IfExists::Replace)
        db.query("DROP TABLE " + name);
    if (!exists || ifExists == IfExists::Replace) {
        // The id keeps the source's type (so the table joins back to it); a SQL type name from the
        // catalog, checked by the server like any type name.
        const std::string type = ids.empty() ? "bigint" : idType.empty() ? "text" : idType;
        db.query("CREATE TABLE " + name + " (id " + type +
                 ", predicted_index integer, predicted_class text, probabilities real[])");
    }
    std::string text;
    text.reserve(size_t(p.rows) * size_t(p.classes) * 12 + size_t(p.rows) * 32);
    char number[32];
    for (int64_t r = 0; r < p.rows; ++r) {
        text += ids.empty() ? std::to_string(r + 1) : copyText(ids[size_t(r)]);
        const int64_t k = p.predicted[size_t(r)];
        text += '\t' + std::to_string(k) + '\t' + copyText(classNames.at(size_t(k))) + "\t{";
        for (int64_t c = 0; c < p.classes; ++c) {
            std::snprintf(number, sizeof number, c ? ",%.7g" : "%.7g",
                          double(p.probabilities[size_t(r * p.classes + c)]));
            text += number;
        }
        text += "}\n";
    }
    db.copyIn("COPY " + name + " (id, predicted_index, predicted_class, probabilities) FROM STDIN", text);
    db.query("COMMIT");
    return p.rows;
}

} // namespace mppdl::data
