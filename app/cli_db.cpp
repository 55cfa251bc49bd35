// mppdl db ls: what a PostgreSQL or Greenplum server offers as pg:TABLE sources. Built only with
// MPPDL_POSTGRES (main.cpp registers it under MPPDL_WITH_POSTGRES).

#include "cli_common.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/catalog.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <iostream>
#include <memory>

namespace mppdl::cli {

namespace {

std::string serverLine(const data::ServerInfo& server) {
    std::string line = server.version;
    if (server.greenplum)
        line += ", " + std::to_string(server.segments) + (server.segments == 1 ? " segment" : " segments");
    return line + ", " + server.connection;
}

/// A name as pg:SCHEMA.TABLE and SQL read it: quoted unless it is a plain lower-case identifier.
std::string sqlName(const std::string& name) {
    bool plain = !name.empty() && !(name[0] >= '0' && name[0] <= '9') && name[0] != '$';
    for (const char c : name)
        plain = plain && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '$');
    if (plain)
        return name;
    std::string out = "\"";
    for (const char c : name)
        out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

std::string rowsText(int64_t estimated) { return estimated < 0 ? "?" : groupThousands(estimated); }

struct DbLsFlags {
    std::string connection;
    std::string schema;
    std::string table;
    bool json = false;

    void add(CLI::App& c) {
        c.add_option("TABLE", table,
                     "show this table's or view's columns (TABLE or SCHEMA.TABLE, names as stored; quote names "
                     "with dots)");
        c.add_option("--conn", connection, kConnectionHelp);
        c.add_option("--schema", schema, "only this schema (default: every schema but the system ones)");
        c.add_flag("--json", json, "one JSON object: the server, and the tables with their columns");
    }

    int run() const {
        std::string schemaFilter = schema;
        std::string tableFilter;
        if (!table.empty()) {
            const auto [s, t] = data::parseQualifiedName(table, "TABLE");
            if (!s.empty() && !schema.empty() && s != schema)
                throw ConfigError("TABLE '" + table + "' names schema '" + s + "' but --schema is '" + schema + "'");
            if (!s.empty())
                schemaFilter = s;
            tableFilter = t;
        }
        const auto server = data::serverInfo(connection);
        const auto tables = data::listTables(connection, schemaFilter, tableFilter);
        if (!table.empty() && tables.empty())
            throw ConfigError("no table or view '" + tableFilter + "'" +
                              (schemaFilter.empty() ? std::string() : " in schema '" + schemaFilter + "'") + " (" +
                              server.connection + "; mppdl db ls lists them)");

        if (json) {
            auto list = nlohmann::json::array();
            for (const auto& t : tables) {
                auto columns = nlohmann::json::array();
                for (const auto& [name, type] : t.columns)
                    columns.push_back({{"name", name}, {"type", type}});
                list.push_back(
                    {{"schema", t.schema},
                     {"name", t.name},
                     {"kind", t.kind},
                     {"estimated_rows", t.estimatedRows < 0 ? nlohmann::json() : nlohmann::json(t.estimatedRows)},
                     {"columns", columns}});
            }
            const nlohmann::json out = {{"server",
                                         {{"version", server.version},
                                          {"full_version", server.fullVersion},
                                          {"connection", server.connection},
                                          {"greenplum", server.greenplum},
                                          {"segments", server.segments}}},
                                        {"tables", list}};
            std::cout << out.dump() << std::endl;
            return 0;
        }

        std::cout << serverLine(server) << "\n";
        using A = TextTable::Align;
        if (table.empty()) {
            if (tables.empty()) {
                std::cout << "no tables or views" << (schema.empty() ? std::string() : " in schema '" + schema + "'")
                          << "\n";
                return 0;
            }
            TextTable list({"schema", "table", "kind", "~rows", "columns"},
                           {A::Left, A::Left, A::Left, A::Right, A::Right});
            for (const auto& t : tables)
                list.addRow({t.schema, t.name, t.kind, rowsText(t.estimatedRows), std::to_string(t.columns.size())});
            std::cout << "\n" << list.render();
            if (std::any_of(tables.begin(), tables.end(), [](const data::TableInfo& t) { return t.estimatedRows < 0; }))
                std::cout << "? = no estimate: a view, or a table not analyzed yet (ANALYZE makes one)\n";
            return 0;
        }
        for (const auto& t : tables) {
            std::cout << "\n"
                      << sqlName(t.schema) << "." << sqlName(t.name) << ": " << t.kind << ", "
                      << (t.estimatedRows < 0 ? std::string("rows not estimated")
                                              : "~" + rowsText(t.estimatedRows) + " rows")
                      << ", " << t.columns.size() << (t.columns.size() == 1 ? " column" : " columns")
                      << " (--data pg:" << sqlName(t.schema) << "." << sqlName(t.name) << ")\n";
            TextTable columns({"#", "column", "type"}, {A::Right, A::Left, A::Left});
            int index = 0;
            for (const auto& [name, type] : t.columns)
                columns.addRow({std::to_string(++index), name, type});
            std::cout << columns.render();
        }
        return 0;
    }
};

} // namespace

void registerDbCommands(CLI::App& app, Command& selected) {
    auto* db = app.add_subcommand("db", "look at a PostgreSQL or Greenplum server's tables (pg:TABLE sources)");
    db->require_subcommand(1);
    auto flags = std::make_shared<DbLsFlags>();
    auto* ls = db->add_subcommand(
        "ls", "the server's version and its tables and views with estimated rows; with TABLE, its columns and types");
    flags->add(*ls);
    ls->callback([&selected, flags] { selected = [flags] { return flags->run(); }; });
}

} // namespace mppdl::cli
