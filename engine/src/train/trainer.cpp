#include "mppdl/train/trainer.h"

#include "evaluate.h"
#include "optimizer_factory.h"
#include "trained_model_impl.h"
#include "weights.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/model/analysis.h"
#include "mppdl/train/devices.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <sstream>

namespace mppdl::train {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// Stamps events with the run's wall time and hands them to the observer.
class Emitter {
public:
    /// `offset`: wall time the run had already spent before this process (a resume).
    explicit Emitter(RunObserver& observer, double offset = 0)
        : m_observer(observer), m_start(Clock::now()), m_offset(offset) {}

    void emit(RunEvent event) {
        event.wallSeconds = elapsed();
        m_observer.onEvents({std::move(event)});
    }
    void message(const std::string& text) {
        RunEvent e;
        e.kind = EventKind::Message;
        e.message = text;
        emit(std::move(e));
    }
    void failed(const Error& error) {
        RunEvent e;
        e.kind = error.kind() == ErrorKind::Cancelled ? EventKind::Cancelled : EventKind::Failed;
        e.message = error.what();
        e.errorKind = toString(error.kind());
        emit(std::move(e));
    }
    double elapsed() const { return m_offset + secondsSince(m_start); }

private:
    RunObserver& m_observer;
    Clock::time_point m_start;
    double m_offset;
};

/// Runs `body`, reporting any failure once as a Failed/Cancelled event and rethrowing it as an
/// mppdl::Error; libtorch's own exceptions are translated here, at the engine's edge.
template <typename Body>
auto reportFailures(Emitter& emitter, Body&& body) -> decltype(body()) {
    try {
        return body();
    } catch (const Error& e) {
        emitter.failed(e);
        throw;
    } catch (const c10::Error& e) {
        const std::string what = e.what_without_backtrace();
        if (what.find("out of memory") != std::string::npos) {
            DeviceError error("the device ran out of memory: " + what.substr(0, what.find('\n')) +
                              " (try a smaller --batch-size)");
            emitter.failed(error);
            throw error;
        }
        InternalError error("libtorch: " + what.substr(0, what.find('\n')));
        emitter.failed(error);
        throw error;
    } catch (const std::bad_alloc&) {
        DeviceError error("out of memory");
        emitter.failed(error);
        throw error;
    } catch (const std::exception& e) {
        InternalError error(e.what());
        emitter.failed(error);
        throw error;
    }
}

/// What the epoch loop carries from one epoch to the next besides weights and optimizer state.
struct LoopState {
    int epochsDone = 0;
    int64_t globalStep = 0;
    int bestEpoch = 0;
    double bestValAccuracy = -1;
    double bestValLoss = INFINITY;
    int epochsWithoutImprovement = 0;
    bool stoppedEarly = false;

    nlohmann::json toJson() const {
        // JSON has no infinity: a run without validation keeps bestValLoss infinite.
        return {{"epochs_done", epochsDone},
                {"global_step", globalStep},
                {"best_epoch", bestEpoch},
                {"best_val_accuracy", bestValAccuracy},
                {"best_val_loss", std::isfinite(bestValLoss) ? nlohmann::json(bestValLoss) : nlohmann::json()},
                {"epochs_without_improvement", epochsWithoutImprovement},
                {"stopped_early", stoppedEarly}};
    }
    static LoopState fromJson(const nlohmann::json& j) {
        LoopState s;
        s.epochsDone = j.at("epochs_done").get<int>();
        s.globalStep = j.at("global_step").get<int64_t>();
        s.bestEpoch = j.at("best_epoch").get<int>();
        s.bestValAccuracy = j.at("best_val_accuracy").get<double>();
        s.bestValLoss = j.at("best_val_loss").is_null() ? INFINITY : j.at("best_val_loss").get<double>();
        s.epochsWithoutImprovement = j.at("epochs_without_improvement").get<int>();
        s.stoppedEarly = j.at("stopped_early").get<bool>();
        return s;
    }
};

/// The resume half of a checkpoint: optimizer state, the random generators the loop draws from
/// (the epoch permutation's, and the global one that dropout uses), and the loop counters.
std::string serializeState(torch::optim::Optimizer& optimizer, at::Generator& permutation, at::Generator& dropout,
                           const torch::Device& device, const LoopState& loop) {
    torch::serialize::OutputArchive archive;
    torch::serialize::OutputArchive optimizerArchive;
    optimizer.save(optimizerArchive);
    archive.write("optimizer", optimizerArchive);
    {
        std::lock_guard<std::mutex> lock(permutation.mutex());
        archive.write("permutation_rng", permutation.get_state());
    }
    if (dropout.defined()) {
        std::lock_guard<std::mutex> lock(dropout.mutex());
        archive.write("dropout_rng", dropout.get_state());
    }
    if (!device.is_cpu()) {
        auto gen = at::globalContext().defaultGenerator(device);
        std::lock_guard<std::mutex> lock(gen.mutex());
        archive.write("device_rng", gen.get_state());
    }
    archive.write("loop", c10::IValue(loop.toJson().dump()));
    return serializeArchive(archive);
}

LoopState restoreState(const std::string& blob, const std::string& what, torch::optim::Optimizer& optimizer,
                       at::Generator& permutation, at::Generator& dropout, const torch::Device& device) {
    torch::serialize::InputArchive archive;
    // Read onto the training device, so that the optimizer's buffers land beside the parameters.
    loadArchive(archive, blob, what, device);
    try {
        torch::serialize::InputArchive optimizerArchive;
        archive.read("optimizer", optimizerArchive);
        optimizer.load(optimizerArchive);
        auto readRng = [&](const char* name, at::Generator gen) {
            torch::Tensor state;
            archive.read(name, state);
            std::lock_guard<std::mutex> lock(gen.mutex());
            gen.set_state(state.to(torch::kCPU));
        };
        readRng("permutation_rng", permutation);
        if (dropout.defined())
            readRng("dropout_rng", dropout);
        if (!device.is_cpu())
            readRng("device_rng", at::globalContext().defaultGenerator(device));
        c10::IValue loop;
        archive.read("loop", loop);
        return LoopState::fromJson(nlohmann::json::parse(loop.toStringRef()));
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw StorageError(what + ": damaged resume state (" + std::string(e.what()).substr(0, 200) + ")");
    }
}

std::string percent(double fraction) {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(2);
    s << 100.0 * fraction << "%";
    return s.str();
}

} // namespace

std::vector<std::string> validate(const TrainConfig& c) {
    std::vector<std::string> problems = validate(c.optimizer);
    for (auto& p : validate(c.schedule))
        problems.push_back(std::move(p));
    if (c.epochs < 1)
        problems.push_back("epochs must be >= 1, got " + std::to_string(c.epochs));
    if (c.batchSize < 1)
        problems.push_back("batch size must be >= 1, got " + std::to_string(c.batchSize));
    if (c.data.validationFraction < 0 || c.data.validationFraction >= 1)
        problems.push_back("validation fraction must be in [0, 1), got " + std::to_string(c.data.validationFraction));
    if (c.earlyStoppingPatience < 0)
        problems.push_back("early-stopping patience must be >= 0");
    if (c.earlyStoppingPatience > 0 && c.data.validationFraction <= 0)
        problems.push_back("early stopping watches the validation loss: set a validation fraction > 0");
    if (c.threads < 0)
        problems.push_back("threads must be >= 0");
    return problems;
}

LoadedData loadData(const TrainConfig& config, const model::Architecture& architecture, RunObserver& observer) {
    Emitter emitter(observer);
    return reportFailures(emitter, [&] {
        const auto problems = validate(config);
        if (!problems.empty())
            throw ConfigError(problems.front());
        checkDevice(config.device); // before the data is loaded: a wrong device should fail fast
        const auto analysis = model::analyze(architecture);
        if (!analysis.ok())
            throw ConfigError("invalid architecture '" + architecture.name + "':\n" +
                              formatProblems(analysis.problems));
        const auto start = Clock::now();
        const data::LoadedSource source = data::loadSource(config.data.location, config.data.source);
        LoadedData loaded{source, data::prepare(source, config.data.validationFraction, config.seed,
                                                config.data.normalization)};
        const auto& prepared = loaded.prepared;
        std::ostringstream m;
        m << "data: " << source.kind << " " << source.location << ", "
          << prepared.train.size() << " train / " << prepared.validation.size() << " validation / "
          << prepared.test.size() << " test rows of " << data::formatShape(prepared.train.sampleShape())
          << ", " << prepared.train.numClasses() << " classes, loaded in " << humanDuration(secondsSince(start));
        emitter.message(m.str());
        return loaded;
    });
}

TrainResult train(const TrainConfig& config, const model::Architecture& architecture,
                  RunObserver& observer, const TrainControl& control) {
    const auto loaded = loadData(config, architecture, observer);
    return train(config, architecture, loaded.prepared, observer, control);
}

TrainResult train(const TrainConfig& config, const model::Architecture& architecture,
                  const data::PreparedData& data, RunObserver& observer, const TrainControl& control) {
    const Checkpoint* resume = control.resumeFrom;
    const std::atomic<bool>* cancel = control.cancel;
    Emitter emitter(observer, resume ? resume->wallSeconds : 0);
    return reportFailures(emitter, [&] {
        const auto problems = validate(config);
        if (!problems.empty())
            throw ConfigError(problems.front());
        if (data.train.empty())
            throw DataError("the training data has no rows");
        applyThreadCount(config.threads);
        const torch::Device device(checkDevice(config.device));

        // Seed before building the network so its initial weights are part of what the seed fixes.
        torch::manual_seed(config.seed);
        auto module = model::GraphModule(architecture);
        const auto& analysis = module->analysis();
        checkInputShape(analysis, data.train.sampleShape(), "the training data");
        if (analysis.numClasses() != data.train.numClasses())
            throw ConfigError("the network's output has " + std::to_string(analysis.numClasses()) +
                              " values but the data has " + std::to_string(data.train.numClasses()) +
                              " classes (change the last Dense layer's units)");
        module->to(device);
        if (control.initialWeights && !resume)
            loadWeights(*module, *control.initialWeights, control.initialWeightsFrom);

        // Everything stays resident on the device as packed tensors: a minibatch is one
        // index_select, with no per-sample work in the loop.
        const auto x = data.train.features().to(device);
        const auto y = data.train.labels().to(device);
        const bool hasValidation = !data.validation.empty();
        torch::Tensor xVal, yVal;
        if (hasValidation) {
            xVal = data.validation.features().to(device);
            yVal = data.validation.labels().to(device);
        }
        const auto& classNames = data.train.classNames();
        auto optimizer = makeOptimizer(config.optimizer, module->parameters());

        const int64_t n = x.size(0);
        const int64_t batch = std::min<int64_t>(config.batchSize, n);
        const int64_t stepsPerEpoch = (n + batch - 1) / batch;
        const int64_t totalSteps = stepsPerEpoch * config.epochs;

        auto generator = at::make_generator<at::CPUGeneratorImpl>(config.seed);
        // Dropout draws from the network's own stream (not torch's global one), seeded apart from
        // the permutations'. On a GPU the masks come from the device's default generator.
        at::Generator dropout;
        if (device.is_cpu()) {
            dropout = at::make_generator<at::CPUGeneratorImpl>(config.seed ^ 0x9E3779B97F4A7C15ULL);
            module->setGenerator(dropout);
        }
        LoopState loop;
        if (resume) {
            const std::string what = "the checkpoint of epoch " + std::to_string(resume->epoch);
            loadWeights(*module, resume->weights, what);
            if (resume->state.empty())
                throw ConfigError(what + " keeps only weights: it cannot be resumed from");
            loop = restoreState(resume->state, what, *optimizer, generator, dropout, device);
            if (loop.epochsDone != resume->epoch)
                throw StorageError(what + " holds the state of epoch " + std::to_string(loop.epochsDone));
            if (loop.globalStep != int64_t(loop.epochsDone) * stepsPerEpoch)
                throw ConfigError(what + " was made with " + std::to_string(loop.globalStep / std::max(1, loop.epochsDone)) +
                                  " steps per epoch, this data and batch size give " + std::to_string(stepsPerEpoch) +
                                  " (a resume needs the run's own data and configuration)");
        }
        const int startEpoch = loop.epochsDone;
        const int64_t startStep = loop.globalStep;

        {
            RunEvent e;
            e.kind = EventKind::Started;
            e.epochs = config.epochs;
            e.stepsPerEpoch = stepsPerEpoch;
            std::ostringstream m;
            m << "training '" << architecture.name << "' (" << groupThousands(analysis.totalParams)
              << " parameters) on " << device.str() << " with " << config.optimizer.name << " lr "
              << config.optimizer.lr;
            if (config.optimizer.momentum > 0)
                m << (config.optimizer.nesterov ? " nesterov momentum " : " momentum ") << config.optimizer.momentum;
            if (config.optimizer.weightDecay > 0)
                m << " weight decay " << config.optimizer.weightDecay;
            if (config.schedule.name != "none")
                m << " (" << config.schedule.name << " schedule)";
            m << ", batch " << batch << ", " << config.epochs
              << (config.epochs == 1 ? " epoch" : " epochs") << ", seed " << config.seed;
            if (device.is_cpu())
                m << ", " << at::get_num_threads() << (at::get_num_threads() == 1 ? " thread" : " threads");
            if (control.initialWeights && !resume)
                m << ", warm start from " << control.initialWeightsFrom;
            if (resume)
                m << "; resuming after epoch " << startEpoch;
            e.epoch = startEpoch;
            e.step = startStep;
            e.message = m.str();
            emitter.emit(std::move(e));
        }

        const bool checkEveryStep = device.is_cpu(); // loss.item() is free on the CPU, a sync on a GPU
        const auto runStart = Clock::now();
        int64_t& globalStep = loop.globalStep;
        TrainResult result;
        result.epochsRun = loop.epochsDone;
        result.bestEpoch = loop.bestEpoch;
        result.stoppedEarly = loop.stoppedEarly;
        // An event that knows where in the run it happened (0-based epoch, 1-based step in it).
        auto positioned = [&](EventKind kind, int epoch, int64_t stepInEpoch) {
            RunEvent e;
            e.kind = kind;
            e.epoch = epoch + 1;
            e.epochs = config.epochs;
            e.step = globalStep;
            e.stepInEpoch = stepInEpoch;
            e.stepsPerEpoch = stepsPerEpoch;
            return e;
        };

        for (int epoch = startEpoch; epoch < config.epochs && !loop.stoppedEarly; ++epoch) {
            const double lr = scheduledLearningRate(config.schedule, config.optimizer.lr, epoch, config.epochs);
            setLearningRate(*optimizer, lr);
            module->train();
            const auto permutation = torch::randperm(n, generator, torch::kLong).to(device);
            auto lossSum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
            auto correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device));
            const auto epochStart = Clock::now();
            auto lastProgress = epochStart;

            auto nonFinite = [&](int64_t step, bool exact) {
                std::ostringstream m;
                m << "the loss became " << (exact ? "" : "non-finite ") << "NaN or infinite in epoch " << epoch + 1
                  << (exact ? ", step " : " at or before step ") << step << " of " << stepsPerEpoch
                  << " (lower the learning rate, or check the data for NaN values)";
                return DataError(m.str());
            };

            for (int64_t step = 0; step < stepsPerEpoch; ++step) {
                if (cancel && cancel->load(std::memory_order_relaxed))
                    throw CancelledError("cancelled in epoch " + std::to_string(epoch + 1) + ", step " +
                                         std::to_string(step + 1));
                const int64_t begin = step * batch;
                const int64_t end = std::min(n, begin + batch);
                const auto index = permutation.slice(0, begin, end);
                const auto xb = x.index_select(0, index);
                const auto yb = y.index_select(0, index);

                const auto logits = module->forwardLogits(xb);
                const auto loss = torch::nn::functional::cross_entropy(logits, yb);
                optimizer->zero_grad();
                loss.backward();
                optimizer->step();
                ++globalStep;

                {
                    torch::NoGradGuard noGrad;
                    lossSum += loss.detach().to(torch::kDouble) * double(end - begin);
                    correct += logits.argmax(1).eq(yb).sum();
                }
                if (checkEveryStep && !std::isfinite(loss.item<float>()))
                    throw nonFinite(step + 1, true);

                const auto now = Clock::now();
                if (std::chrono::duration<double>(now - lastProgress).count() >= config.progressIntervalSeconds &&
                    step + 1 < stepsPerEpoch) {
                    lastProgress = now;
                    const double seen = double(end);
                    const double meanLoss = lossSum.item<double>() / seen;
                    if (!std::isfinite(meanLoss))
                        throw nonFinite(step + 1, false);
                    const double epochSeconds = secondsSince(epochStart);
                    const double runSeconds = secondsSince(runStart);
                    RunEvent e = positioned(EventKind::Progress, epoch, step + 1);
                    e.metrics = {{"train_loss", meanLoss},
                                 {"train_accuracy", double(correct.item<int64_t>()) / seen},
                                 {"images_per_sec", seen / epochSeconds},
                                 {"eta_seconds", runSeconds / double(globalStep - startStep) *
                                                     double(totalSteps - globalStep)},
                                 {"lr", lr}};
                    emitter.emit(std::move(e));
                }
            }

            const double trainLoss = lossSum.item<double>() / double(n);
            if (!std::isfinite(trainLoss))
                throw nonFinite(stepsPerEpoch, false);
            const double trainSeconds = secondsSince(epochStart);
            RunEvent e = positioned(EventKind::Epoch, epoch, stepsPerEpoch);
            e.metrics = {{"train_loss", trainLoss},
                         {"train_accuracy", double(correct.item<int64_t>()) / double(n)},
                         {"lr", lr},
                         {"images_per_sec", double(n) / trainSeconds}};
            bool improved = false;
            if (hasValidation) {
                auto validation = evaluateModule(module, xVal, yVal, classNames, "validation");
                e.metrics.push_back({"val_loss", validation.loss});
                e.metrics.push_back({"val_accuracy", validation.accuracy});
                if (validation.accuracy > loop.bestValAccuracy) {
                    loop.bestValAccuracy = validation.accuracy;
                    loop.bestEpoch = result.bestEpoch = epoch + 1;
                }
                improved = validation.loss < loop.bestValLoss;
                if (improved)
                    loop.bestValLoss = validation.loss;
                result.validation = std::move(validation);
            }
            e.metrics.push_back({"epoch_seconds", secondsSince(epochStart)});
            e.metrics.push_back({"eta_seconds", secondsSince(runStart) / double(epoch + 1 - startEpoch) *
                                                    double(config.epochs - epoch - 1)});
            const std::optional<double> valAccuracy =
                hasValidation ? std::optional<double>(result.validation->accuracy) : std::nullopt;
            emitter.emit(std::move(e));
            result.epochsRun = loop.epochsDone = epoch + 1;

            loop.epochsWithoutImprovement = improved ? 0 : loop.epochsWithoutImprovement + 1;
            if (config.earlyStoppingPatience > 0 && loop.epochsWithoutImprovement >= config.earlyStoppingPatience &&
                epoch + 1 < config.epochs) {
                result.stoppedEarly = loop.stoppedEarly = true;
                emitter.message("early stopping: the validation loss has not improved for " +
                                std::to_string(loop.epochsWithoutImprovement) + " epochs");
            }
            if (control.checkpoints) {
                const auto checkpointStart = Clock::now();
                Checkpoint checkpoint;
                checkpoint.epoch = loop.epochsDone;
                checkpoint.valAccuracy = valAccuracy;
                checkpoint.weights = serializeWeights(*module);
                checkpoint.state = serializeState(*optimizer, generator, dropout, device, loop);
                checkpoint.wallSeconds = emitter.elapsed();
                checkpoint.serializeSeconds = secondsSince(checkpointStart);
                control.checkpoints->onCheckpoint(checkpoint);
            }
        }
        // A resume of a run whose epochs were all done (it stopped during the test evaluation).
        if (hasValidation && !result.validation)
            result.validation = evaluateModule(module, xVal, yVal, classNames, "validation");

        if (!data.test.empty()) {
            auto test = evaluateModule(module, data.test.features().to(device), data.test.labels().to(device),
                                       classNames, "test");
            RunEvent e;
            e.kind = EventKind::Evaluation;
            e.epoch = result.epochsRun;
            e.epochs = config.epochs;
            e.step = globalStep; // after the last step: series ordered by step end with it
            e.metrics = {{"test_loss", test.loss}, {"test_accuracy", test.accuracy}};
            e.message = "test accuracy " + percent(test.accuracy);
            e.evaluation = std::make_shared<Evaluation>(test);
            emitter.emit(std::move(e));
            result.test = std::move(test);
        }

        result.seconds = emitter.elapsed();
        RunEvent done;
        done.kind = EventKind::Finished;
        done.epoch = result.epochsRun;
        done.epochs = config.epochs;
        done.step = globalStep;
        done.metrics = {{"epochs", double(result.epochsRun)}, {"seconds", result.seconds},
                        {"best_epoch", double(result.bestEpoch)}};
        if (result.validation) {
            done.metrics.push_back({"val_loss", result.validation->loss});
            done.metrics.push_back({"val_accuracy", result.validation->accuracy});
        }
        if (result.test) {
            done.metrics.push_back({"test_loss", result.test->loss});
            done.metrics.push_back({"test_accuracy", result.test->accuracy});
            done.evaluation = std::make_shared<Evaluation>(*result.test);
        }
        emitter.emit(std::move(done));

        auto impl = std::make_unique<TrainedModel::Impl>();
        impl->architecture = architecture;
        impl->normalizer = data.normalizer;
        impl->classNames = classNames;
        module->eval();
        impl->module = module;
        impl->device = device;
        result.model = TrainedModel(std::move(impl));
        return result;
    });
}

} // namespace mppdl::train
