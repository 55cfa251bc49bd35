// Launch: a form for a new run, checked as it is typed (the numbers, the choices, the
// architecture, and the architecture against the data's sample shape, read in the background),
// that starts a detached `mppdl train` (detached.h says why detached).

#include "tui/detached.h"
#include "tui/screen.h"

#include "mppdl/core/error.h"
#include "mppdl/data/distribution.h"
#include "mppdl/data/source.h"
#include "mppdl/model/analysis.h"
#include "mppdl/session/architectures.h"
#include "mppdl/train/optimizers.h"
#include "mppdl/train/strategies.h"
#include "mppdl/train/trainer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>

namespace mppdl::tui {

namespace {

struct Field {
    std::string label, flag, value;
    std::vector<std::string> choices; ///< empty: typed text
    std::string help;
};

std::vector<std::string> names(const std::vector<Choice>& choices) {
    std::vector<std::string> out;
    for (const auto& c : choices)
        out.emplace_back(c.name);
    return out;
}

std::vector<std::string> distributionNames() {
    std::vector<std::string> out;
    for (const auto& p : data::distributionPolicies())
        out.emplace_back(p.name);
    return out;
}

std::string number(double v) {
    std::string s = nlohmann::json(v).dump();
    return s;
}

/// The data's sample shape, learnt on a job for a source no dataset record describes (a file's
/// header, a table's first row: data::planSource), or why it cannot be read.
struct ShapeProbe {
    std::string location, connection;
    Pending<std::vector<int64_t>> shape;
};

class LaunchScreen : public Screen {
public:
    LaunchScreen(int64_t fromRun, const Snapshot& snapshot) {
        const train::TrainConfig defaults;
        m_fields = {
            {"data", "--data", "", {}, "a path (IDX, CSV, .npy, image folder), a dataset number, or pg:TABLE"},
            {"connection", "--conn", "", {}, "for pg: sources: host=... dbname=... (the password: PGPASSWORD)"},
            {"architecture", "--arch", "fmnist_cnn", {}, "bundled, a project architecture (NAME@V) or a file"},
            {"strategy", "--strategy", defaults.strategy, names(train::strategyChoices()), ""},
            {"segments", "--segments", std::to_string(defaults.segments), {}, "1 to 1024"},
            {"distribute by", "--distribute-by", defaults.distribution, distributionNames(), ""},
            {"epochs", "--epochs", std::to_string(defaults.epochs), {}, ""},
            {"batch size", "--batch-size", std::to_string(defaults.batchSize), {}, ""},
            {"optimizer", "--optimizer", defaults.optimizer.name, names(train::optimizerChoices()), ""},
            {"learning rate", "--lr", number(defaults.optimizer.lr), {}, ""},
            {"device", "--device", defaults.device, {}, "cpu, cuda:0, cuda:0,1"},
            {"threads", "--threads", "0", {}, "0: every core"},
            {"name", "--name", "", {}, "empty: ARCH-ID"},
        };
        if (const auto* run = fromRun > 0 ? snapshot.run(fromRun) : nullptr)
            fillFrom(*run);
        else if (!snapshot.datasets.empty())
            set("data", snapshot.datasets.back().location);
        else if (std::filesystem::exists(data::kFashionMnistDir))
            set("data", data::kFashionMnistDir);
        m_from = fromRun;
    }

    std::string title(const Context&) const override {
        return m_from > 0 ? "New run from run " + std::to_string(m_from) : "New run";
    }

    std::vector<KeyHelp> keys() const override {
        return {{"Up/Down", "field"},
                {"Left/Right", "choose"},
                {"Ctrl-U", "clear field"},
                {"Enter", "start"},
                {"Esc", "cancel"}};
    }

    bool typing() const override { return true; }

    void draw(Canvas& canvas, int x, int y, int w, int h, Context& context) override {
        m_problems = check(context);
        const int labelWidth = 15;
        const int valueWidth = std::max(10, std::min(48, w - labelWidth - 4));
        for (int i = 0; i < int(m_fields.size()) && i < h - 4; ++i) {
            const auto& f = m_fields[size_t(i)];
            const bool on = i == m_cursor;
            canvas.text(x, y + i, f.label, on ? Style::Key : Style::Normal, labelWidth);
            std::string value = f.value;
            if (!f.choices.empty())
                value = (context.unicode ? "◂ " : "< ") + value + (context.unicode ? " ▸" : " >");
            else if (on)
                value += "_";
            canvas.text(x + labelWidth, y + i, fitText(value, valueWidth), on ? Style::Selected : Style::Normal);
            const auto problem = m_problems.find(f.label);
            const int noteX = x + labelWidth + valueWidth + 2;
            if (problem != m_problems.end())
                canvas.text(noteX, y + i, fitText(problem->second, x + w - noteX), Style::Bad);
            else if (on && !f.help.empty())
                canvas.text(noteX, y + i, fitText(f.help, x + w - noteX), Style::Dim);
        }
        int row = y + std::min(int(m_fields.size()), h - 4) + 1;
        // The command, or what to fix, wrapped over the rows left (the last one cut).
        const auto wrapped = [&](const std::string& text, Style style, int most) {
            const auto lines = wrapText(text, w);
            for (int i = 0; i < int(lines.size()) && i < most && row < y + h; ++i, ++row)
                canvas.text(x, row,
                            i + 1 == most && i + 1 < int(lines.size())
                                ? fitText(lines[size_t(i)] + " " + lines[size_t(i) + 1], w)
                                : lines[size_t(i)],
                            style);
        };
        if (m_problems.empty())
            wrapped("Enter starts: " + commandText(context), Style::Good, std::max(1, y + h - row - 2));
        else
            for (const auto& [label, problem] : m_problems)
                wrapped(label + ": " + problem, Style::Bad, 3);
        if (!m_extra.empty())
            wrapped("also from run " + std::to_string(m_from) + ": " + join(m_extra), Style::Dim, 1);
        wrapped("The run trains as a detached mppdl train: it goes on if this terminal closes.", Style::Dim, 1);
    }

    Outcome key(int key, Context& context) override {
        auto& f = m_fields[size_t(m_cursor)];
        switch (key) {
        case kUp:
        case kBackTab: m_cursor = (m_cursor + int(m_fields.size()) - 1) % int(m_fields.size()); break;
        case kDown:
        case kTab: m_cursor = (m_cursor + 1) % int(m_fields.size()); break;
        case kLeft:
        case kRight:
            if (!f.choices.empty()) {
                auto it = std::find(f.choices.begin(), f.choices.end(), f.value);
                size_t i = it == f.choices.end() ? 0 : size_t(it - f.choices.begin());
                i = (i + (key == kRight ? 1 : f.choices.size() - 1)) % f.choices.size();
                f.value = f.choices[i];
            }
            break;
        case 21: // Ctrl-U: the field emptied, as in a shell's line
            if (f.choices.empty())
                f.value.clear();
            break;
        case kBackspace:
            if (f.choices.empty() && !f.value.empty()) {
                auto text = decodeUtf8(f.value);
                text.pop_back();
                f.value = encodeUtf8(text);
            }
            break;
        case kEscape: return Outcome::back();
        case kEnter: {
            m_problems = check(context);
            if (!m_problems.empty()) {
                context.message = m_problems.begin()->first + ": " + m_problems.begin()->second;
                break;
            }
            try {
                const auto args = command(context);
                char stamp[32];
                const std::time_t now = std::time(nullptr);
                std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
                const std::string log = logDirectory() + "/train-" + stamp + ".log";
                const int pid = startDetached(args, log);
                context.message = "started mppdl train (pid " + std::to_string(pid) + ", log " + log + ")";
                context.watch->poke();
                return Outcome::back();
            } catch (const std::exception& e) {
                context.message = e.what();
            }
            break;
        }
        default:
            if (f.choices.empty() && key >= 32 && key < 0x110000)
                f.value += encodeUtf8(std::u32string(1, char32_t(key)));
            break;
        }
        return Outcome::stay();
    }

private:
    const std::string& get(const std::string& label) const {
        for (const auto& f : m_fields)
            if (f.label == label)
                return f.value;
        static const std::string none;
        return none;
    }
    void set(const std::string& label, const std::string& value) {
        for (auto& f : m_fields)
            if (f.label == label)
                f.value = value;
    }
    static std::string join(const std::vector<std::string>& parts) {
        std::string out;
        for (const auto& p : parts)
            out += (out.empty() ? "" : " ") + p;
        return out;
    }

    void fillFrom(const store::RunRecord& run) {
        train::TrainConfig c;
        try {
            c = train::trainConfigFromJson(run.config);
        } catch (const Error&) {
            return;
        }
        set("data", c.data.location);
        set("connection", c.data.source.connection);
        set("architecture", run.architectureName + "@" + std::to_string(run.architectureVersion));
        set("strategy", c.strategy);
        set("segments", std::to_string(c.segments));
        set("distribute by", c.distribution);
        set("epochs", std::to_string(c.epochs));
        set("batch size", std::to_string(c.batchSize));
        set("optimizer", c.optimizer.name);
        set("learning rate", number(c.optimizer.lr));
        set("device", c.device);
        set("threads", std::to_string(c.threads));
        // What the form does not show goes along as it was.
        const auto& s = c.data.source;
        const auto add = [&](const std::string& flag, const std::string& value) {
            if (!value.empty())
                m_extra.insert(m_extra.end(), {flag, value});
        };
        if (c.optimizer.momentum != 0)
            add("--momentum", number(c.optimizer.momentum));
        if (c.optimizer.weightDecay != 0)
            add("--weight-decay", number(c.optimizer.weightDecay));
        add("--seed", std::to_string(c.seed));
        add("--val-fraction", number(c.data.validationFraction));
        add("--normalize", data::toString(c.data.normalization));
        if (s.kind != "auto")
            add("--kind", s.kind);
        add("--label", s.label);
        if (!s.shape.empty()) {
            std::string shape;
            for (const auto d : s.shape)
                shape += (shape.empty() ? "" : ",") + std::to_string(d);
            add("--shape", shape);
        }
        if (s.limit > 0)
            add("--limit", std::to_string(s.limit));
        add("--id", s.id);
        add("--distributed-by", s.distributedBy);
        std::string features;
        for (const auto& f : s.features)
            features += (features.empty() ? "" : ",") + f;
        add("--features", features);
    }

    /// The data's location: a dataset number names that dataset's.
    std::string location(const Snapshot& snapshot) const {
        const std::string& given = get("data");
        if (!given.empty() && std::all_of(given.begin(), given.end(), ::isdigit))
            for (const auto& d : snapshot.datasets)
                if (std::to_string(d.id) == given)
                    return d.location;
        return given;
    }

    std::vector<std::string> command(const Context& context) const {
        std::vector<std::string> args = {context.executable, "train", "--project", context.project};
        for (const auto& f : m_fields) {
            std::string value = f.label == "data" ? location(*context.snapshot) : f.value;
            if (value.empty() || (f.label == "threads" && value == "0"))
                continue;
            args.insert(args.end(), {f.flag, value});
        }
        args.insert(args.end(), m_extra.begin(), m_extra.end());
        return args;
    }

    std::string commandText(const Context& context) const {
        auto args = command(context);
        args[0] = "mppdl";
        std::string out;
        for (const auto& a : args)
            out += (out.empty() ? "" : " ") + (a.find(' ') != std::string::npos ? "'" + a + "'" : a);
        return out;
    }

    /// Field label -> what is wrong with it.
    std::map<std::string, std::string> check(const Context& context) {
        const Snapshot& snapshot = *context.snapshot;
        std::map<std::string, std::string> out;
        const auto whole = [&](const std::string& label, long long low, long long high) -> long long {
            const std::string& v = get(label);
            try {
                size_t used = 0;
                const long long n = std::stoll(v, &used);
                if (used == v.size() && n >= low && n <= high)
                    return n;
            } catch (const std::exception&) {
            }
            out[label] = "a whole number from " + std::to_string(low) + " to " + std::to_string(high);
            return low;
        };
        train::TrainConfig config;
        config.segments = int(whole("segments", 1, 1024));
        config.epochs = int(whole("epochs", 1, 100000));
        config.batchSize = whole("batch size", 1, 1 << 20);
        config.threads = int(whole("threads", 0, 4096));
        try {
            size_t used = 0;
            config.optimizer.lr = std::stod(get("learning rate"), &used);
            if (used != get("learning rate").size() || !(config.optimizer.lr > 0))
                throw std::invalid_argument("lr");
        } catch (const std::exception&) {
            out["learning rate"] = "a positive number, such as 0.01";
        }
        config.strategy = get("strategy");
        config.distribution = get("distribute by");
        config.optimizer.name = get("optimizer");
        config.device = get("device");
        if (out.empty())
            for (const auto& problem : train::validate(config))
                out["strategy"] = problem;
        const std::string where = location(snapshot);
        if (where.empty())
            out["data"] = "where the rows are";
        else if (where.rfind("pg:", 0) != 0 && !std::filesystem::exists(where))
            out["data"] = "no such file or folder";
        // The architecture, and its input against the data's samples.
        std::vector<int64_t> input;
        const std::string& arch = get("architecture");
        bool projectArchitecture = false;
        for (const auto& a : snapshot.architectures)
            if (arch == a.name || arch.rfind(a.name + "@", 0) == 0)
                projectArchitecture = true;
        if (!projectArchitecture) {
            if (m_architecture.first != arch) {
                // Read and analysed once per name typed, not once per frame.
                m_architecture = {arch, {{}, ""}};
                try {
                    const auto analysis = model::analyze(model::loadArchitecture(session::resolveArchitecture(arch)));
                    if (!analysis.ok())
                        m_architecture.second.second = analysis.problems.front().where + ": " +
                                                       analysis.problems.front().message;
                    else
                        m_architecture.second.first = analysis.inputShape;
                } catch (const Error& e) {
                    m_architecture.second.second = e.what();
                }
            }
            if (!m_architecture.second.second.empty())
                out["architecture"] = m_architecture.second.second;
            input = m_architecture.second.first;
        }
        if (!out.count("data")) {
            const auto shape = sampleShape(context, where);
            if (m_probe && m_probe->location == where && !m_probe->shape.error().empty())
                out["data"] = m_probe->shape.error();
            else if (!input.empty() && shape && !shape->empty() && *shape != input)
                out["architecture"] = "takes " + data::formatShape(input) + " samples; the data's are " +
                                      data::formatShape(*shape);
        }
        return out;
    }

    /// The data's sample shape: a dataset record's, else probed on a job once the location and
    /// connection have stayed the same for a moment (not once per key typed); nullopt until known.
    std::optional<std::vector<int64_t>> sampleShape(const Context& context, const std::string& where) {
        for (const auto& d : context.snapshot->datasets)
            if (d.location == where) {
                const auto schema = nlohmann::json::parse(d.schema, nullptr, false);
                if (!schema.is_discarded() && schema.contains("sample_shape"))
                    return schema["sample_shape"].get<std::vector<int64_t>>();
            }
        const std::string connection = get("connection");
        if (m_typed != std::make_pair(where, connection)) {
            m_typed = {where, connection};
            m_typedAt = context.now;
        }
        const bool probed = m_probe && m_probe->location == where && m_probe->connection == connection;
        if (!probed && context.now - m_typedAt >= 0.3) {
            m_probe = std::make_unique<ShapeProbe>();
            m_probe->location = where;
            m_probe->connection = connection;
            data::SourceOptions options;
            options.connection = connection;
            m_probe->shape.start(*context.jobs,
                                 [where, options] { return data::planSource(where, options).train.sampleShape(); });
        }
        if (!probed || !m_probe->shape.done())
            return std::nullopt;
        if (const auto* shape = m_probe->shape.value())
            return *shape;
        return std::vector<int64_t>{};
    }

    std::vector<Field> m_fields;
    std::vector<std::string> m_extra;
    std::map<std::string, std::string> m_problems;
    std::pair<std::string, std::pair<std::vector<int64_t>, std::string>> m_architecture{"\n", {}};
    std::unique_ptr<ShapeProbe> m_probe;
    std::pair<std::string, std::string> m_typed; ///< the location and connection last seen
    double m_typedAt = 0;                        ///< and since when
    int m_cursor = 0;
    int64_t m_from = 0;
};

} // namespace

std::unique_ptr<Screen> launchScreen(int64_t fromRun, const Snapshot& snapshot) {
    return std::make_unique<LaunchScreen>(fromRun, snapshot);
}

} // namespace mppdl::tui
