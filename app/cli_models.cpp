// mppdl eval, predict, export: using a trained model (a model file or a recorded run's weights).

#include "cli_common.h"
#include "cli_processes.h"
#include "cli_project.h"

#include "mppdl/core/build_info.h"
#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/memory.h"
#include "mppdl/data/predictions.h"
#include "mppdl/data/preview.h"
#include "mppdl/model/analysis.h"
#include "mppdl/train/devices.h"
#include "mppdl/train/process_group.h"
#include "mppdl/train/madlib_model.h"
#include "mppdl/train/trained_model.h"
#ifdef MPPDL_WITH_ONNX
#include "mppdl/interop/onnx.h"
#endif

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <unordered_set>

namespace mppdl::cli {

namespace {

double secondsBetween(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

/// The model eval, predict and export use: a model file, or a recorded run's weights.
struct ModelFlags {
    std::string modelPath;
    std::string runRef;
    std::string epoch;
    std::string project;
    std::string device = "cpu";

    void add(CLI::App& c) {
        auto* model = c.add_option("--model", modelPath, "a model file written by 'mppdl train --save'");
        auto* run = c.add_option("--run", runRef, "a recorded run's weights: RUN, RUN:EPOCH, RUN:best or RUN:last");
        model->excludes(run);
        c.add_option("--epoch", epoch, "with --run: the epoch whose weights to use (N, best or last; default last)")
            ->excludes(model);
        c.add_option("--project", project, "project file for --run (default: the one *.mppdl here)");
        c.add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
    }

    /// RUN[:EPOCH] with --epoch folded in.
    std::string reference() const {
        if (epoch.empty())
            return runRef;
        if (runRef.find(':') != std::string::npos)
            throw ConfigError("--run " + runRef + " already names an epoch; drop --epoch " + epoch);
        return runRef + ":" + epoch;
    }

    /// What the model is, for messages and metadata: "run 3 (mlp-3), epoch 5" or the file.
    std::string label() const { return modelPath.empty() ? reference() : modelPath; }

    /// The model on `on` (default: --device).
    train::TrainedModel load(const std::string& command, const std::string& on = {}) const {
        if (modelPath.empty() == runRef.empty())
            throw ConfigError(command + " needs a model: --model FILE or --run RUN[:EPOCH]");
        const auto& where = on.empty() ? device : on;
        return !modelPath.empty() ? train::TrainedModel::load(modelPath, where)
                                  : runModel(openProject(project, store::Access::Read), reference(), where);
    }
};

/// Which rows of a source eval and predict use: `split` is test (the source's test split, or all
/// rows when it has none), train, or all (sources without a test split). Sets `name` to what was
/// chosen; true for the test split, false for the training rows.
bool splitOf(const std::string& split, bool hasTest, std::string& name) {
    name = split;
    if (split == "test") {
        if (hasTest)
            return true;
        name = "all";
        return false;
    }
    if (split == "train")
        return false;
    if (split == "all") {
        if (hasTest)
            throw ConfigError("--split all is for sources without a test split; use --split train or test");
        return false;
    }
    throw ConfigError("--split must be test, train or all, got '" + split + "'");
}

const data::Dataset& chooseRows(const data::LoadedSource& loaded, const std::string& split, std::string& name) {
    return splitOf(split, !loaded.test.empty(), name) ? loaded.test : loaded.train;
}

constexpr const char* kSplitHelp = "test (the source's test split, or all rows when it has none)|train|all";

struct EvalFlags {
    SourceFlags source;
    ModelFlags model;
    std::string split = "test";
    bool json = false;

    int threads = 0;

    void add(CLI::App& c) {
        model.add(c);
        c.add_option("--threads", threads, "CPU threads (0 = OMP_NUM_THREADS, else all CPUs)")->capture_default_str();
        source.add(c);
        c.add_option("--split", split, kSplitHelp)->capture_default_str();
        c.add_flag("--json", json, "print the result as one JSON object");
    }

    int run() {
        train::applyThreadCount(threads);
        const auto trained = model.load("eval");
        const auto loaded = data::loadSource(source.location, train::readingOptions(trained, source.options()));
        for (const auto& note : loaded.notes)
            std::cerr << note << '\n';
        std::string name;
        const auto& rows = chooseRows(loaded, split, name);
        const auto evaluation = trained.evaluate(rows, name);
        if (json)
            std::cout << evaluationJson(evaluation) << std::endl;
        else
            printEvaluation(evaluation);
        return 0;
    }
};

/// A CSV field, quoted when it holds a delimiter, a quote or a line break (RFC 4180).
std::string csvField(const std::string& text) {
    if (text.find_first_of(",\"\r\n") == std::string::npos)
        return text;
    std::string quoted = "\"";
    for (char c : text)
        quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    return quoted + "\"";
}

/// A file written beside its path and renamed into place when complete: a failed prediction never
/// leaves a truncated CSV where a good one was. Opened before any work, so that a path that cannot
/// be written fails at once.
class AtomicFile {
public:
    explicit AtomicFile(std::string path) : m_path(std::move(path)), m_tmp(m_path + ".tmp") {
        m_out.open(m_tmp, std::ios::trunc);
        if (!m_out)
            throw StorageError(m_path + ": cannot write (" + std::strerror(errno) + ")");
    }
    ~AtomicFile() {
        if (!m_committed) {
            m_out.close();
            std::remove(m_tmp.c_str());
        }
    }
    std::ostream& stream() { return m_out; }
    void commit() {
        m_out.flush();
        const bool written = bool(m_out);
        m_out.close();
        if (!written || std::rename(m_tmp.c_str(), m_path.c_str()) != 0) {
            const std::string reason = std::strerror(errno);
            std::remove(m_tmp.c_str());
            m_committed = true;
            throw StorageError(m_path + ": cannot write (" + reason + ")");
        }
        m_committed = true;
    }

private:
    std::string m_path, m_tmp;
    std::ofstream m_out;
    bool m_committed = false;
};

/// The header of the predictions CSV: with topK 0, "id,class,prob_<class>..." (every class's
/// probability); else "id,class_1,prob_1,...,class_K,prob_K" (the K most probable classes, best
/// first, as MADlib's top_k). The id is the source's id column, else the row's 1-based position ("row").
void writePredictionsHeader(std::ostream& out, const std::vector<std::string>& classNames, bool ids, int64_t topK) {
    out << (ids ? "id" : "row");
    if (topK == 0) {
        out << ",class";
        for (const auto& name : classNames)
            out << "," << csvField("prob_" + name);
    } else {
        for (int64_t k = 1; k <= topK; ++k)
            out << ",class_" << k << ",prob_" << k;
    }
    out << "\n";
}

/// The CSV lines of `p`; without ids, rows are numbered from `firstRow` + 1.
void writePredictionRows(std::ostream& out, const data::Predictions& p, const std::vector<std::string>& classNames,
                         const std::vector<std::string>& ids, int64_t topK, int64_t firstRow) {
    char number[32];
    auto probability = [&number](float v) {
        std::snprintf(number, sizeof number, "%.7g", double(v));
        return number;
    };
    std::vector<int64_t> order(size_t(p.classes));
    for (int64_t r = 0; r < p.rows; ++r) {
        const float* row = p.probabilities.data() + r * p.classes;
        out << (ids.empty() ? std::to_string(firstRow + r + 1) : csvField(ids[size_t(r)]));
        if (topK == 0) {
            out << "," << csvField(classNames[size_t(p.predicted[size_t(r)])]);
            for (int64_t c = 0; c < p.classes; ++c)
                out << "," << probability(row[c]);
        } else {
            std::iota(order.begin(), order.end(), 0);
            // Ties keep the lower class index first, as argmax does.
            std::partial_sort(order.begin(), order.begin() + topK, order.end(),
                              [row](int64_t a, int64_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
            for (int64_t k = 0; k < topK; ++k)
                out << "," << csvField(classNames[size_t(order[size_t(k)])]) << ","
                    << probability(row[order[size_t(k)]]);
        }
        out << "\n";
    }
}

/// Where predict's rows come from: the split of a source, and whether it is read a chunk at a time.
struct PredictRows {
    std::string name;  ///< test, train or all
    bool test = false; ///< the source's test split (else its training rows)
    int64_t rows = 0;
    bool streamed = false;
    int64_t chunkRows = 0;
    std::string why; ///< the budget's verdict
};

/// What predict did, for its report.
struct PredictFigures {
    int64_t rows = 0;
    int segments = 1;
    int64_t chunks = 0;
    double read = 0, predict = 0, write = 0;
    /// Rows that came with a label the model knows: their confusion matrix (the model's classes,
    /// row-major, true class down) and summed cross-entropy; rows of classes it does not know.
    int64_t labeled = 0, unknownClass = 0;
    int64_t badRows = 0; ///< left out for a NaN or infinite feature (--on-bad-rows skip)
    std::vector<int64_t> confusion;
    double lossSum = 0;

    /// Adds the labelled rows of `rows` (predicted as `p`) to the figures. A source class is the
    /// model's class of the same name, else (integer classes "0".."9") the class of that index.
    void score(const data::Dataset& rows, const data::Predictions& p, const std::vector<std::string>& modelClasses) {
        if (!rows.labeled() || rows.empty())
            return;
        const auto k = int64_t(modelClasses.size());
        confusion.resize(size_t(k * k), 0);
        std::vector<int64_t> toModel;
        for (const auto& name : rows.classNames()) {
            auto at = std::find(modelClasses.begin(), modelClasses.end(), name);
            int64_t index = at == modelClasses.end() ? -1 : int64_t(at - modelClasses.begin());
            if (index < 0 && !name.empty() && name.find_first_not_of("0123456789") == std::string::npos &&
                name.size() < 10 && std::stoll(name) < k)
                index = std::stoll(name);
            toModel.push_back(index);
        }
        const auto labels = data::labelsOf(rows);
        for (size_t r = 0; r < labels.size() && r < size_t(p.rows); ++r) {
            const int64_t truth = labels[r] >= 0 && size_t(labels[r]) < toModel.size() ? toModel[size_t(labels[r])]
                                                                                       : -1;
            if (truth < 0) {
                ++unknownClass;
                continue;
            }
            ++labeled;
            ++confusion[size_t(truth * k + p.predicted[r])];
            lossSum -= std::log(std::max(1e-12, double(p.probabilities[r * size_t(p.classes) + size_t(truth)])));
        }
    }

    /// The labelled rows' evaluation (labeled > 0).
    Evaluation evaluation(const std::vector<std::string>& modelClasses, const std::string& split) const {
        Evaluation e;
        e.split = split;
        e.samples = labeled;
        e.loss = lossSum / double(std::max<int64_t>(1, labeled));
        e.classNames = modelClasses;
        e.confusion = confusion;
        const size_t k = modelClasses.size();
        int64_t right = 0;
        for (size_t t = 0; t < k; ++t) {
            int64_t count = 0;
            for (size_t q = 0; q < k; ++q)
                count += confusion[t * k + q];
            right += confusion[t * k + t];
            e.perClassCount.push_back(count);
            e.perClassAccuracy.push_back(count ? double(confusion[t * k + t]) / double(count) : 0.0);
        }
        e.accuracy = double(right) / double(std::max<int64_t>(1, labeled));
        return e;
    }
};

/// mppdl predict: a model's class probabilities for every row of a source, to a CSV file and/or
/// back to a PostgreSQL table.
struct PredictFlags {
    SourceFlags source;
    ModelFlags model;
    std::string split = "test";
    std::string out;
    int64_t topK = 0;
    std::string outTable;
    std::string ifExists = "fail";
    std::string outConnection;
    int threads = 0;
    int segments = 0;
    int64_t batchSize = 0;
    std::string memoryBudget;
    int processes = 1;
    ProcessFlags processFlags;
    bool outPerRank = false;
    bool json = false;

    void add(CLI::App& c) {
        model.add(c);
        c.add_option("--threads", threads, "CPU threads (0 = OMP_NUM_THREADS, else all CPUs)")->capture_default_str();
        c.add_option("--segments", segments,
                     "predict this many shards of the rows side by side, sharing out the threads (0 = one per CPU "
                     "thread, or per device of a --device list such as cuda:0,1)")
            ->capture_default_str()
            ->check(CLI::Range(0, 4096));
        c.add_option("--batch-size", batchSize,
                     "rows a forward pass (0 = as many as keep the largest layer output in the CPU cache; 1024 on "
                     "a GPU)")
            ->capture_default_str()
            ->check(CLI::Range(0, 1 << 20));
        source.add(c);
        c.add_option("--split", split, kSplitHelp)->capture_default_str();
        c.add_option("--out", out, "write a CSV file: id (or row), class, the probability of each class");
        c.add_option("--top-k", topK, "in the CSV: the K most probable classes and their probabilities instead")
            ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
#ifdef MPPDL_WITH_POSTGRES
        c.add_option("--out-table", outTable,
                     "write (id, predicted_index, predicted_class, probabilities) to this PostgreSQL table");
        c.add_option("--if-exists", ifExists, "when the output table exists: fail|replace|append")
            ->capture_default_str();
        c.add_option("--out-conn", outConnection, "connection of the output table (default: --conn)");
#endif
        c.add_option("--memory-budget", memoryBudget,
                     "memory the rows may take (512M, 2G); more are read, predicted and written a chunk at a time "
                     "(default: half of what this process may use, its cgroup limit included)");
        c.add_option("--processes", processes,
                     "processes that each read and predict a contiguous share of the rows (c10d rendezvous; on "
                     "other hosts 'mppdl worker' joins); a table appears all at once, a CSV is one file in row order")
            ->capture_default_str()
            ->check(CLI::Range(1, 4096));
        processFlags.add(c);
        c.add_flag("--out-per-rank", outPerRank,
                   "with --processes: each process writes its rows to a CSV of its own, NAME-R.csv for --out NAME.csv");
        c.add_flag("--json", json, "print the result as one JSON object");
    }

    /// What a worker needs to predict its share: the flags that shape the work (every process
    /// reads the source and the model under the same names).
    nlohmann::json job() const {
        train::TrainConfig config; // the source as a run's configuration writes it (never a password)
        config.data.location = m_location;
        config.data.source = m_options;
        return {{"data", nlohmann::json::parse(train::toJson(config)).at("data")},
                {"model",
                 {{"path", model.modelPath},
                  {"run", model.runRef},
                  {"epoch", model.epoch},
                  {"project", model.project},
                  {"device", model.device}}},
                {"split", split},
                {"out", out},
                {"top_k", topK},
                {"out_table", outTable},
                {"if_exists", ifExists},
                {"out_connection", outConnection},
                {"threads", threads},
                {"segments", segments},
                {"batch_size", batchSize},
                {"memory_budget", memoryBudget},
                {"out_per_rank", outPerRank}};
    }

    /// A worker's flags from rank 0's job().
    static PredictFlags fromJob(const nlohmann::json& j) {
        PredictFlags f;
        const auto data = train::trainConfigFromJson(nlohmann::json{{"data", j.at("data")}}.dump()).data;
        f.m_location = data.location;
        f.m_options = data.source;
        const auto& m = j.at("model");
        f.model.modelPath = m.at("path");
        f.model.runRef = m.at("run");
        f.model.epoch = m.at("epoch");
        f.model.project = m.at("project");
        f.model.device = m.at("device");
        f.split = j.at("split");
        f.out = j.at("out");
        f.topK = j.at("top_k");
        f.outTable = j.at("out_table");
        f.ifExists = j.at("if_exists");
        f.outConnection = j.at("out_connection");
        f.threads = j.at("threads");
        f.segments = j.at("segments");
        f.batchSize = j.at("batch_size");
        f.memoryBudget = j.at("memory_budget");
        f.outPerRank = j.at("out_per_rank");
        return f;
    }

    int run() {
        if (out.empty() && outTable.empty())
            throw ConfigError("predict needs somewhere to write: --out FILE.csv"
#ifdef MPPDL_WITH_POSTGRES
                              " and/or --out-table TABLE"
#endif
            );
        if (topK > 0 && out.empty())
            throw ConfigError("--top-k shapes the CSV of --out; a table gets every class's probability");
        if (outPerRank && (processes < 2 || out.empty()))
            throw ConfigError("--out-per-rank splits the CSV of --out over the processes of --processes N");
        m_location = source.location;
        m_options = source.options();
        std::unique_ptr<JobProcesses> launched;
        if (processes > 1) {
            const int local = processFlags.localProcesses > 0 ? std::min(processFlags.localProcesses, processes)
                                                              : processes;
            // --threads counts the host's threads, as in training: its processes share them.
            threads = std::max(1, (threads > 0 ? threads : train::defaultThreadCount()) / local);
            // Where this process's output goes is known (and checked) before the others start.
            openOutputs(0, processes);
            launched = JobProcesses::start(processes, processFlags, "predicting its share of the rows",
                                           nlohmann::json{{"predict", job()}});
            m_processes = launched.get();
            return predictRank(launched->group());
        }
        openOutputs(0, 1);
        return predictRank(std::nullopt);
    }

    /// A worker's share of a prediction over processes (mppdl worker).
    int runWorker(train::ProcessGroup& group) {
        openOutputs(group.rank(), group.world());
        try {
            return predictRank(std::ref(group));
        } catch (const Error& e) {
            group.set(doneKey(group.rank()), nlohmann::json{{"error", e.what()}}.dump());
            throw;
        }
    }

private:
    std::string m_location;
    data::SourceOptions m_options;
    int m_rank = 0, m_world = 1;
    JobProcesses* m_processes = nullptr; ///< rank 0 of a run over processes: its workers
    std::unique_ptr<AtomicFile> m_csv;   ///< where this process writes its rows
    std::unique_ptr<AtomicFile> m_whole; ///< rank 0 over processes: the one CSV the parts make
#ifdef MPPDL_WITH_POSTGRES
    data::IfExists m_ifExists = data::IfExists::Fail;
    std::unique_ptr<data::PredictionTable> m_table;
#endif
    bool m_header = false;
    bool m_ids = false;                        ///< the rows have ids (a table's --id)
    std::unordered_set<std::string> m_seenIds; ///< the ids predicted so far (checkIds)
    std::vector<std::string> m_classNames;     ///< the model's

    static std::string doneKey(int rank) { return "mppdl/predict/done/" + std::to_string(rank); }

    /// Rank `rank`'s own CSV of a run over processes: NAME-R.csv for NAME.csv.
    std::string rankCsv(int rank) const {
        const auto dot = out.rfind('.');
        const auto slash = out.rfind('/');
        const bool extension = dot != std::string::npos && (slash == std::string::npos || dot > slash);
        return (extension ? out.substr(0, dot) : out) + "-" + std::to_string(rank) + (extension ? out.substr(dot) : "");
    }
    std::string partCsv(int rank) const { return out + ".part-" + std::to_string(rank); }

    /// Opened first: a path that cannot be written fails before minutes of reading and predicting.
    /// Over processes each writes its rows to a part (a file beside the CSV, a table beside the
    /// output table), which rank 0 joins when every process has written its own.
    void openOutputs(int rank, int world) {
        m_rank = rank;
        m_world = world;
#ifdef MPPDL_WITH_POSTGRES
        m_ifExists = data::parseIfExists(ifExists);
#endif
        if (out.empty())
            return;
        if (world == 1) {
            m_csv = std::make_unique<AtomicFile>(out);
            return;
        }
        if (outPerRank) {
            m_csv = std::make_unique<AtomicFile>(rankCsv(rank));
            return;
        }
        if (rank == 0)
            m_whole = std::make_unique<AtomicFile>(out);
        m_csv = std::make_unique<AtomicFile>(partCsv(rank));
        m_header = true; // the whole file's, written by rank 0
    }

    /// This process's rows: all of them, or its share of a run over processes (then rank 0 joins
    /// the parts and reports).
    int predictRank(std::optional<std::reference_wrapper<train::ProcessGroup>> group) {
        train::applyThreadCount(threads);
        // A device list ("cuda:0,1") spreads the segments; the model loads on its first device.
        const bool deviceList = model.device.find(',') != std::string::npos;
        const auto trained = model.load("predict", deviceList ? train::segmentDevices(model.device, -1, 1).front()
                                                              : std::string());
        if (topK > int64_t(trained.classNames().size()))
            throw ConfigError("--top-k " + std::to_string(topK) + " is more than the model's " +
                              std::to_string(trained.classNames().size()) + " classes");
        m_classNames = trained.classNames();
        // Rows to score need no label; a CSV as wide as the model's input has none.
        m_options = train::readingOptions(trained, m_options);
        m_options.labelsOptional = true;
        m_options.expectedFeatures = 1;
        for (const auto d : model::analyze(trained.architecture()).inputShape)
            m_options.expectedFeatures *= d;
        train::TrainedModel::PredictOptions options;
        options.batchSize = batchSize;
        options.segments = segments;
        if (deviceList)
            options.devices = model.device;
        const auto start = std::chrono::steady_clock::now();
        // The rows first, without their features: a split over the memory budget is read,
        // predicted and written a chunk at a time, never whole.
        auto planned = data::planSource(m_location, m_options);
        if (m_rank == 0)
            for (const auto& note : planned.notes) // how the source was read (a header taken, ...)
                std::cerr << note << '\n';
        const PredictRows rows = plan(planned);
        PredictFigures figures;
        if (m_world == 1 && !rows.streamed) {
            figures = predictInMemory(trained, planned, rows, options);
        } else {
            if (planned.sourceTrainRows < 0)
                throw ConfigError("predict --processes reads each process's rows by their number in the source: a " +
                                  planned.kind + " source needs an order to number them by (name the table's --id)");
            // A contiguous share of the rows each, numbered on from the share before.
            const int64_t first = rows.rows * m_rank / m_world, last = rows.rows * (m_rank + 1) / m_world;
            figures = predictRange(trained, rows, first, last, options);
        }
        if (!group) {
            report(figures, rows, secondsBetween(start, std::chrono::steady_clock::now()), {});
            return 0;
        }
        auto& g = group->get();
        nlohmann::json mine{{"rank", m_rank},
                            {"rows", figures.rows},
                            {"read_seconds", figures.read},
                            {"predict_seconds", figures.predict},
                            {"write_seconds", figures.write},
                            {"chunks", figures.chunks},
                            {"labeled", figures.labeled},
                            {"unknown_class", figures.unknownClass},
                            {"confusion", figures.confusion},
                            {"loss_sum", figures.lossSum}};
        if (m_rank > 0) {
            g.set(doneKey(m_rank), mine.dump());
            return 0;
        }
        auto ranks = joinParts(mine);
        // The run's figures: every row, and each phase's slowest process (the critical path).
        figures.rows = figures.labeled = figures.unknownClass = 0;
        figures.lossSum = 0;
        figures.confusion.clear();
        for (const auto& r : ranks) {
            figures.rows += r.at("rows").get<int64_t>();
            figures.labeled += r.value("labeled", int64_t(0));
            figures.unknownClass += r.value("unknown_class", int64_t(0));
            figures.lossSum += r.value("loss_sum", 0.0);
            const auto confusion = r.value("confusion", std::vector<int64_t>{});
            figures.confusion.resize(std::max(figures.confusion.size(), confusion.size()), 0);
            for (size_t i = 0; i < confusion.size(); ++i)
                figures.confusion[i] += confusion[i];
            figures.read = std::max(figures.read, r.at("read_seconds").get<double>());
            figures.predict = std::max(figures.predict, r.at("predict_seconds").get<double>());
            figures.write = std::max(figures.write, r.at("write_seconds").get<double>());
        }
        report(figures, rows, secondsBetween(start, std::chrono::steady_clock::now()), ranks);
        return 0;
    }

    /// Rank 0: every process's figures, then their parts joined into the outputs (the table in one
    /// transaction, the CSV renamed into place); on a process's failure the parts go.
    nlohmann::json joinParts(const nlohmann::json& mine) {
        nlohmann::json ranks = nlohmann::json::array({mine});
        std::string failure;
        bool died = false; // else a worker reported its failure
        for (int r = 1; r < m_world && failure.empty(); ++r) {
            try {
                auto done = nlohmann::json::parse(
                    m_processes->awaitKey(doneKey(r), r, processFlags.loadTimeoutSeconds));
                if (done.contains("error"))
                    failure = "process " + std::to_string(r) + " failed: " + done.at("error").get<std::string>();
                ranks.push_back(std::move(done));
            } catch (const DeviceError& e) {
                failure = e.what();
                died = true;
            }
        }
        if (!failure.empty()) {
            removeParts();
            const std::string message = "predict over " + std::to_string(m_world) + " processes: " + failure +
                                        "; nothing was written";
            if (died)
                throw DeviceError(message);
            throw DataError(message);
        }
        const auto t = std::chrono::steady_clock::now();
        try {
#ifdef MPPDL_WITH_POSTGRES
            if (!outTable.empty())
                data::mergePredictionParts(outConnection.empty() ? m_options.connection : outConnection, outTable,
                                           m_ifExists, m_world);
#endif
            if (m_whole) {
                writePredictionsHeader(m_whole->stream(), m_classNames, m_ids, topK);
                for (int r = 0; r < m_world; ++r) {
                    std::ifstream part(partCsv(r), std::ios::binary);
                    if (part.peek() != std::ifstream::traits_type::eof()) // streaming no bytes fails the stream
                        m_whole->stream() << part.rdbuf();
                }
                m_whole->commit();
            }
        } catch (...) {
            removeParts();
            throw;
        }
        removeParts();
        ranks[0]["merge_seconds"] = secondsBetween(t, std::chrono::steady_clock::now());
        return ranks;
    }

    void removeParts() {
        if (m_whole)
            for (int r = 0; r < m_world; ++r) {
                std::remove(partCsv(r).c_str());
                std::remove((partCsv(r) + ".tmp").c_str()); // a killed process's, as AtomicFile names it
            }
#ifdef MPPDL_WITH_POSTGRES
        if (!outTable.empty())
            data::dropPredictionParts(outConnection.empty() ? m_options.connection : outConnection, outTable, m_world);
#endif
    }
    /// The split and how it is read: whole, or (rows over the budget, of a kind that reads
    /// selected rows) a chunk at a time.
    PredictRows plan(const data::LoadedSource& planned) const {
        PredictRows rows;
        const bool selective = planned.sourceTrainRows >= 0;
        const int64_t testRows = selective ? planned.sourceTestRows : planned.test.size();
        rows.test = splitOf(split, testRows > 0, rows.name);
        rows.rows = rows.test ? testRows : selective ? planned.sourceTrainRows : planned.train.size();
        const auto budget = data::memoryBudget(memoryBudget);
        const auto shape = planned.train.sampleShape();
        const int64_t bytes = data::preparedBytes(rows.rows, shape);
        rows.streamed = selective && bytes > budget.bytes;
        rows.chunkRows = data::chunkRows(budget.bytes, data::preparedBytes(1, shape));
        rows.why = humanBytes(double(bytes)) + " of rows" + (bytes > budget.bytes ? " exceed" : " fit") +
                   " the memory budget of " + humanBytes(double(budget.bytes)) + " (" + budget.why + ")";
        return rows;
    }

    PredictFigures predictInMemory(const train::TrainedModel& trained, data::LoadedSource& planned,
                                   const PredictRows& rows, const train::TrainedModel::PredictOptions& options) {
        PredictFigures f;
        auto t0 = std::chrono::steady_clock::now();
        // A kind that cannot read selected rows read everything already.
        const auto loaded = planned.sourceTrainRows >= 0 ? data::loadSource(m_location, m_options) : std::move(planned);
        const auto& data = rows.test ? loaded.test : loaded.train;
        // Ids exist for a table's rows (its id column), which are always the "train" rows.
        const auto ids = rows.test ? std::vector<std::string>{} : loaded.ids;
        checkIds(ids);
        auto t1 = std::chrono::steady_clock::now();
        const auto p = trained.predict(data, options);
        auto t2 = std::chrono::steady_clock::now();
        f.score(data, p, m_classNames);
        f.badRows = loaded.badRows;
        write(p, ids, loaded.idType, 0);
        commit();
        f.rows = p.rows;
        f.segments = p.segments;
        f.chunks = 1;
        f.read = secondsBetween(t0, t1);
        f.predict = secondsBetween(t1, t2);
        f.write = secondsBetween(t2, std::chrono::steady_clock::now());
        return f;
    }

    /// Rows [first, last) of the split, read, predicted and written a chunk at a time (one chunk
    /// when they fit the budget).
    PredictFigures predictRange(const train::TrainedModel& trained, const PredictRows& rows, int64_t first,
                                int64_t last, const train::TrainedModel::PredictOptions& options) {
        PredictFigures f;
        const int64_t chunkRows = rows.streamed ? rows.chunkRows : std::max<int64_t>(1, last - first);
        auto lastSaid = std::chrono::steady_clock::now();
        for (int64_t begin = first; begin < last; begin += chunkRows) {
            const int64_t end = std::min(last, begin + chunkRows);
            const auto t0 = std::chrono::steady_clock::now();
            auto selection = std::make_shared<data::RowSelection>();
            auto& ordinals = rows.test ? selection->test : selection->train;
            ordinals.resize(size_t(end - begin));
            std::iota(ordinals.begin(), ordinals.end(), begin);
            auto chunkOptions = m_options;
            chunkOptions.rows = selection;
            const auto chunk = data::loadSource(m_location, chunkOptions);
            const auto& part = rows.test ? chunk.test : chunk.train;
            if (part.size() != end - begin)
                throw InternalError(m_location + ": read " + std::to_string(part.size()) + " rows of a chunk of " +
                                    std::to_string(end - begin));
            const auto& chunkIds = rows.test ? std::vector<std::string>{} : chunk.ids;
            checkIds(chunkIds);
            const auto t1 = std::chrono::steady_clock::now();
            const auto p = trained.predict(part, options);
            const auto t2 = std::chrono::steady_clock::now();
            f.score(part, p, m_classNames);
            write(p, chunkIds, chunk.idType, begin);
            const auto t3 = std::chrono::steady_clock::now();
            f.read += secondsBetween(t0, t1);
            f.predict += secondsBetween(t1, t2);
            f.write += secondsBetween(t2, t3);
            f.rows += p.rows;
            f.segments = p.segments;
            ++f.chunks;
            if (!json && m_rank == 0 && secondsBetween(lastSaid, t3) >= 2.0) {
                std::cerr << "predicted " << groupThousands(end - first) << " of " << groupThousands(last - first)
                          << " rows\n";
                lastSaid = t3;
            }
        }
        const auto t = std::chrono::steady_clock::now();
        commit();
        f.write += secondsBetween(t, std::chrono::steady_clock::now());
        return f;
    }

    /// Predictions are written by id: an id seen twice (in this process's rows) is refused before
    /// anything is written, naming it.
    void checkIds(const std::vector<std::string>& ids) {
        for (const auto& id : ids)
            if (!m_seenIds.insert(id).second)
                throw DataError(m_location + ": the id '" + id + "' (--id " + m_options.id +
                                ") is on more than one row; predictions are written by id, so each must be unique");
    }

    /// One chunk's predictions to the CSV and the table (opened with the first chunk, when the
    /// ids' type is known; over processes, this process's part of it); without ids, rows are
    /// numbered from `firstRow` + 1.
    void write(const data::Predictions& p, const std::vector<std::string>& ids, const std::string& idType,
               int64_t firstRow) {
        m_ids = !ids.empty();
        if (m_csv) {
            if (!m_header)
                writePredictionsHeader(m_csv->stream(), m_classNames, m_ids, topK);
            m_header = true;
            writePredictionRows(m_csv->stream(), p, m_classNames, ids, topK, firstRow);
        }
#ifdef MPPDL_WITH_POSTGRES
        if (!outTable.empty()) {
            if (!m_table)
                openTable(m_ids, idType);
            m_table->append(p, m_classNames, ids, firstRow);
        }
#else
        (void)idType;
#endif
    }

#ifdef MPPDL_WITH_POSTGRES
    void openTable(bool ids, const std::string& idType) {
        const std::string connection = outConnection.empty() ? m_options.connection : outConnection;
        m_table = m_world == 1
                      ? std::make_unique<data::PredictionTable>(connection, outTable, m_ifExists, ids, idType)
                      : std::make_unique<data::PredictionTable>(connection, data::partTableName(outTable, m_rank),
                                                                data::IfExists::Replace, ids, idType);
    }
#endif

    /// The table's transaction first, then the CSV renamed into place.
    void commit() {
#ifdef MPPDL_WITH_POSTGRES
        if (!outTable.empty()) {
            if (!m_table) // no rows: the table is still made (or replaced)
                openTable(m_ids, "");
            m_table->commit();
        }
#endif
        if (m_csv) {
            if (!m_header)
                writePredictionsHeader(m_csv->stream(), m_classNames, m_ids, topK);
            m_csv->commit();
        }
    }

    void report(const PredictFigures& f, const PredictRows& rows, double seconds, const nlohmann::json& ranks) const {
        const double total = std::max(1e-9, seconds);
        const double forward = std::max(1e-9, f.predict);
        const std::string kept = rows.streamed ? "streamed in " + std::to_string(f.chunks) + " chunks" : "in memory";
        if (json) {
            nlohmann::json j{{"rows", f.rows},
                             {"split", rows.name},
                             {"segments", f.segments},
                             {"model", model.label()},
                             {"read_seconds", f.read},
                             {"predict_seconds", f.predict},
                             {"write_seconds", f.write},
                             {"rows_per_sec", double(f.rows) / total},
                             {"predict_rows_per_sec", double(f.rows) / forward},
                             {"memory", kept},
                             {"memory_why", rows.why},
                             {"processes", m_world}};
            if (!ranks.empty())
                j["ranks"] = ranks;
            if (!out.empty())
                j["csv"] = outPerRank ? rankCsv(0) + " ... " + rankCsv(m_world - 1) : out;
            if (!outTable.empty())
                j["table"] = outTable;
            if (f.labeled > 0)
                j["evaluation"] = nlohmann::json::parse(evaluationJson(f.evaluation(m_classNames, rows.name)));
            if (f.unknownClass > 0)
                j["rows_of_unknown_classes"] = f.unknownClass;
            if (f.badRows > 0)
                j["bad_rows_skipped"] = f.badRows;
            std::cout << j.dump() << std::endl;
            return;
        }
        std::string where = outPerRank ? rankCsv(0) + " ... " + rankCsv(m_world - 1) : out;
        if (!outTable.empty())
            where += (where.empty() ? "" : " and ") + std::string("table ") + outTable;
        std::cout << "wrote " << groupThousands(f.rows) << " predictions (" << rows.name << " rows of " << m_location
                  << ") to " << where << " in " << humanDuration(total);
        if (m_world > 1) {
            std::cout << " = " << groupThousands(std::llround(double(f.rows) / total)) << " rows/s over " << m_world
                      << " processes (";
            for (size_t r = 0; r < ranks.size(); ++r)
                std::cout << (r ? ", " : "") << "process " << ranks[r].value("rank", 0) << " "
                          << groupThousands(ranks[r].value("rows", int64_t(0))) << " rows";
            std::cout << ")";
        } else {
            std::cout << " (read " << humanDuration(f.read) << ", predict " << humanDuration(forward) << " = "
                      << groupThousands(std::llround(double(f.rows) / forward)) << " rows/s on " << f.segments
                      << (f.segments == 1 ? " segment" : " segments") << ", write " << humanDuration(f.write) << ")";
        }
        if (rows.streamed)
            std::cout << "; " << kept << ": " << rows.why;
        std::cout << std::endl;
        if (f.badRows > 0)
            std::cout << countText(f.badRows, "row")
                      << " with a NaN or infinite feature left out (--on-bad-rows skip)\n";
        // The rows came with labels: how the predictions fare against them.
        if (f.unknownClass > 0)
            std::cout << groupThousands(f.unknownClass) << " labelled rows are of classes the model does not know: "
                      << "not scored\n";
        if (f.labeled > 0) {
            std::cout << '\n';
            printEvaluation(f.evaluation(m_classNames, rows.name + " rows, labelled"));
        }
    }
};

/// mppdl export: a model in a format other runtimes read.
struct ExportFlags {
    ModelFlags model;
    std::string format = "onnx";
    std::string out;
    int64_t opset = 13;
    bool json = false;
    std::string connection;
    std::string table;

    void add(CLI::App& c) {
        model.add(c);
        c.add_option("--format", format,
                     "onnx, or madlib: a row of a MADlib model architecture table (Keras JSON and weights) that "
                     "madlib_keras_predict_byom reads")
            ->capture_default_str();
        c.add_option("--out,-o", out, "the file to write (madlib: a file of SQL, for psql)");
        c.add_option("--opset", opset, "ONNX opset, 13 to 17")->capture_default_str();
        c.add_option("--conn", connection, std::string("madlib: the database of --table: ") + kConnectionHelp);
        c.add_option("--table", table, "madlib: the model architecture table to add the model to (made if missing)");
        c.add_flag("--json", json, "print what was written as one JSON object");
    }

    /// The model and where it came from ("run 3 (fmnist_cnn), epoch 2"), for the metadata.
    train::TrainedModel loadModel(std::string& from, std::vector<std::pair<std::string, std::string>>& metadata) {
        from = model.modelPath;
        if (!model.runRef.empty() && model.modelPath.empty()) {
            // The weights read once: for the model and for its label in the metadata.
            const auto project = openProject(model.project, store::Access::Read);
            const auto weights = runWeights(project, model.reference());
            metadata = {{"mppdl.run", weights.label},
                        {"mppdl.run_id", std::to_string(weights.run.id)},
                        {"mppdl.epoch", std::to_string(weights.checkpoint.epoch)}};
            from = weights.label;
            return runModel(project, weights, model.device);
        }
        metadata = {{"mppdl.model_file", model.modelPath}};
        return model.load("export");
    }

    int exportMadlib() {
        if (out.empty() && table.empty())
            throw ConfigError("--format madlib writes to --table TABLE (over --conn) or to --out FILE.sql: give one");
        if (!out.empty() && !connection.empty())
            throw ConfigError("--out writes a file of SQL and --conn a row into the database: give one");
        std::string from;
        std::vector<std::pair<std::string, std::string>> metadata;
        const auto trained = loadModel(from, metadata);
        const auto madlib = train::toMadlibModel(trained,
                                                 "trained by mppdl " + std::string(versionString()) + ": " + from);
        // MADlib's documentation names its model architecture table model_arch_library.
        const std::string target = table.empty() ? "model_arch_library" : table;
        int64_t modelId = 0;
        if (out.empty()) {
            modelId = train::insertMadlibModel(madlib, connection, target);
        } else {
            std::ofstream file(out, std::ios::binary | std::ios::trunc);
            if (!(file << train::madlibInsertSql(madlib, target)) || !file.flush())
                throw StorageError(out + ": cannot write");
        }
        if (json) {
            std::cout << nlohmann::json{{"format", "madlib"},
                                        {"table", target},
                                        {"file", out},
                                        {"model_id", modelId},
                                        {"weights", madlib.weightCount},
                                        {"arrays", madlib.arrays.size()},
                                        {"normalizing_const", madlib.normalizingConst},
                                        {"class_values", madlib.classValues}}
                             .dump()
                      << std::endl;
            return 0;
        }
        std::cout << "wrote " << trained.architecture().name << " from " << from << " to "
                  << (out.empty() ? target + " as model_id " + std::to_string(modelId)
                                  : out + " (SQL: psql -f " + out + " adds it to " + target + ")")
                  << "\n  " << groupThousands(madlib.weightCount) << " float32 weights in " << madlib.arrays.size()
                  << " arrays, in Keras' order:";
        for (const auto& [name, shape] : madlib.arrays) {
            std::cout << " " << name << " ";
            for (size_t d = 0; d < shape.size(); ++d)
                std::cout << (d ? "x" : "") << shape[d];
        }
        std::cout << "\n  MADlib predicts rows of REAL[] height x width x channels (divided by normalizing_const):\n  "
                  << train::madlibPredictCall(madlib, target, modelId) << std::endl;
        return 0;
    }

    int run() {
        if (format == "madlib")
            return exportMadlib();
        if (!table.empty() || !connection.empty())
            throw ConfigError("--table and --conn are for --format madlib");
        if (out.empty())
            throw ConfigError("--out FILE is required: the ONNX file to write");
        if (format != "onnx")
            throw ConfigError("unknown --format '" + format + "'; mppdl exports onnx and madlib" +
                              (format == "torchscript" ? " (TorchScript needs a scripted module, which libtorch's C++ "
                                                         "API cannot make of a C++ network)"
                                                       : ""));
#ifdef MPPDL_WITH_ONNX
        interop::OnnxOptions options;
        options.opset = opset;
        std::string from;
        const auto trained = loadModel(from, options.metadata);
        const auto summary = interop::exportOnnx(trained, out, options);
        std::string shape = "batch";
        for (int64_t d : summary.inputShape)
            shape += "x" + std::to_string(d);
        if (json) {
            std::cout << nlohmann::json{{"file", out},
                                        {"format", "onnx"},
                                        {"opset", summary.opset},
                                        {"nodes", summary.nodes},
                                        {"initializers", summary.initializers},
                                        {"weight_bytes", summary.weightBytes},
                                        {"file_bytes", summary.fileBytes},
                                        {"members", summary.members},
                                        {"classes", summary.classes},
                                        {"input", interop::kOnnxInput},
                                        {"input_shape", summary.inputShape},
                                        {"output", interop::kOnnxOutput}}
                             .dump()
                      << std::endl;
        } else {
            std::cout << "wrote " << out << " (ONNX opset " << summary.opset << ", " << summary.nodes << " nodes, "
                      << groupThousands(summary.weightBytes / 4) << " weights in " << summary.initializers
                      << " initializers, " << groupThousands(summary.fileBytes)
                      << " bytes): " << trained.architecture().name
                      << (summary.members > 1 ? " ensemble of " + std::to_string(summary.members) : std::string())
                      << " from " << from << "\n  input  \"" << interop::kOnnxInput << "\" float32 " << shape
                      << ", raw values (the graph applies " << data::toString(trained.normalizer().mode)
                      << " normalization)\n  output \"" << interop::kOnnxOutput << "\" float32 batchx"
                      << summary.classes << ", class probabilities; class names in the metadata (mppdl.classes)"
                      << std::endl;
        }
        return 0;
#else
        throw ConfigError("this mppdl was built without ONNX (the libonnx-dev package was missing at build time)");
#endif
    }
};

template <class Flags>
void addCommand(CLI::App& app, Command& selected, const char* name, const char* description) {
    auto flags = std::make_shared<Flags>();
    auto* command = app.add_subcommand(name, description);
    flags->add(*command);
    command->callback([&selected, flags] { selected = [flags] { return flags->run(); }; });
}

} // namespace

int runPredictJob(const nlohmann::json& job, train::ProcessGroup& group) {
    auto flags = PredictFlags::fromJob(job);
    return flags.runWorker(group);
}

void registerModelCommands(CLI::App& app, Command& selected) {
    addCommand<EvalFlags>(app, selected, "eval", "evaluate a saved model or a recorded run on a data source");
    addCommand<PredictFlags>(app, selected, "predict",
                             "a model's class probabilities for a source's rows, to a CSV file or a PostgreSQL table");
    addCommand<ExportFlags>(app, selected, "export", "write a model as ONNX for other runtimes");
}

} // namespace mppdl::cli
