// Many configurations trained at once: model hopper parallelism against task parallelism and one
// after another, on real Fashion-MNIST rows.

#include "mppdl/core/error.h"
#include "mppdl/tune/tuner.h"

#include "../train/train_test_util.h"
#include "support/expect_error.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace mppdl;
using namespace mppdl::tune;

namespace {

const data::PreparedData& subset() {
    static const data::PreparedData prepared = fashionSubset(1200, 0.2, 5, 300);
    return prepared;
}

train::TrainConfig configWith(double lr, int64_t batch, int epochs) {
    train::TrainConfig c;
    c.optimizer.lr = lr;
    c.optimizer.momentum = 0.9;
    c.batchSize = batch;
    c.epochs = epochs;
    c.seed = 11;
    return c;
}

/// Three configurations of mlp and lenet5, each with a recording observer and checkpoint sink.
struct Trials {
    std::vector<RecordingObserver> events{3};
    std::vector<KeepCheckpoints> checkpoints{3};
    std::vector<Trial> make(int epochs) {
        const std::vector<std::pair<const char*, train::TrainConfig>> chosen = {{"mlp", configWith(0.05, 32, epochs)},
                                                                                {"lenet5",
                                                                                 configWith(0.05, 16, epochs)},
                                                                                {"mlp", configWith(0.02, 24, epochs)}};
        std::vector<Trial> out;
        for (size_t i = 0; i < chosen.size(); ++i) {
            Trial t;
            t.config = chosen[i].second;
            t.architecture = bundledArchitecture(chosen[i].first);
            t.observer = &events[i];
            t.checkpoints = &checkpoints[i];
            out.push_back(std::move(t));
        }
        return out;
    }
};

ScheduleOptions schedule(const std::string& scheduler, int segments) {
    ScheduleOptions o;
    o.scheduler = scheduler;
    o.segments = segments;
    o.seed = 3;
    o.threads = 1; // the same one-thread team everywhere: results comparable bit for bit
    return o;
}

std::vector<RunEvent> ofKind(const RecordingObserver& o, EventKind kind) {
    std::vector<RunEvent> out;
    for (const auto& e : o.events())
        if (e.kind == kind)
            out.push_back(e);
    return out;
}

std::vector<int> allUntil(size_t n, int epoch) { return std::vector<int>(n, epoch); }

} // namespace

// Under model hopper every configuration sees every shard each epoch: its steps are those of all
// rows, its runs report epochs, checkpoints, a test evaluation and Finished, and it learns.
TEST(ModelHopper, EveryConfigurationSeesEveryShardEachEpoch) {
    Trials t;
    TrialSet set(t.make(2), subset(), schedule("mop", 3));
    set.train({0, 1, 2}, allUntil(3, 2));
    const std::vector<int64_t> batches = {32, 16, 24};
    for (size_t i = 0; i < 3; ++i) {
        SCOPED_TRACE("configuration " + std::to_string(i + 1));
        ASSERT_EQ(ofKind(t.events[i], EventKind::Started).size(), 1u);
        EXPECT_NE(ofKind(t.events[i], EventKind::Started)[0].message.find("hopping over 3 segments"),
                  std::string::npos);
        const auto epochs = ofKind(t.events[i], EventKind::Epoch);
        ASSERT_EQ(epochs.size(), 2u);
        // Three shards of 320 rows (960 training rows): each a whole number of its batches.
        int64_t steps = 0;
        for (int s = 0; s < 3; ++s)
            steps += (320 + batches[i] - 1) / batches[i];
        EXPECT_EQ(epochs[1].step, 2 * steps);
        EXPECT_EQ(epochs[1].epoch, 2);
        EXPECT_GT(epochs[1].metric("val_accuracy"), 0.45) << "chance is 0.1";
        EXPECT_EQ(t.checkpoints[i].all.size(), 2u);
        EXPECT_FALSE(t.checkpoints[i].all[1].state.empty());
        ASSERT_EQ(ofKind(t.events[i], EventKind::Finished).size(), 1u);
        EXPECT_GT(ofKind(t.events[i], EventKind::Finished)[0].metric("test_accuracy"), 0.45);
        EXPECT_TRUE(set.status(i).finished);
        EXPECT_EQ(set.status(i).epochsDone, 2);
        EXPECT_EQ(ofKind(t.events[i], EventKind::Progress).size(), 2u * 2) << "one after each shard but the last";
    }
    // The trial's model is what was tested: on the raw test rows, its accuracy is the run's.
    data::SourceOptions options;
    options.limit = 1200;
    const auto rawTest = data::loadSource(MPPDL_FASHION_MNIST_DIR, options).test.slice(0, 300);
    for (size_t i = 0; i < 3; ++i)
        EXPECT_NEAR(set.model(i).evaluate(rawTest, "test").accuracy,
                    ofKind(t.events[i], EventKind::Finished)[0].metric("test_accuracy"), 1e-12);
}

// Each configuration's data order is fixed by its place in the search, not by which worker ran
// first: two searches give the same models bit for bit; with one segment, model hopper is training
// one after another; task parallelism trains each configuration as one after another would.
TEST(ModelHopper, ResultsDoNotDependOnTiming) {
    auto trained = [](const std::string& scheduler, int segments) {
        Trials t;
        TrialSet set(t.make(2), subset(), schedule(scheduler, segments));
        set.train({0, 1, 2}, allUntil(3, 2));
        std::vector<train::TrainedModel> models;
        for (size_t i = 0; i < 3; ++i)
            models.push_back(set.model(i));
        return models;
    };
    const auto a = trained("mop", 3), b = trained("mop", 3);
    const auto one = trained("mop", 1), sequential = trained("sequential", 1), task = trained("task", 3);
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_TRUE(sameTensors(a[i], b[i])) << "configuration " << i + 1;
        EXPECT_TRUE(sameTensors(one[i], sequential[i])) << "configuration " << i + 1;
        EXPECT_TRUE(sameTensors(task[i], sequential[i])) << "configuration " << i + 1;
        EXPECT_FALSE(sameTensors(a[i], sequential[i])) << "three shards visit the rows in another order";
    }
}

// Rounds continue where the last left off (Hyperband's rungs), and a checkpoint continues a trial
// as if it had never stopped.
TEST(ModelHopper, RoundsAndResumesContinueBitForBit) {
    Trials straight;
    TrialSet whole(straight.make(3), subset(), schedule("mop", 2));
    whole.train({0, 1, 2}, allUntil(3, 3));

    Trials rounds;
    TrialSet stepwise(rounds.make(3), subset(), schedule("mop", 2));
    stepwise.train({0, 1, 2}, allUntil(3, 1));
    EXPECT_EQ(stepwise.status(0).epochsDone, 1);
    EXPECT_FALSE(stepwise.status(0).finished);
    EXPECT_TRUE(ofKind(rounds.events[0], EventKind::Finished).empty());
    stepwise.train({0, 2}, {2, 2});
    EXPECT_EQ(stepwise.status(1).epochsDone, 1) << "left out of the round";

    Trials resumed;
    auto trials = resumed.make(3);
    for (size_t i = 0; i < 3; ++i)
        trials[i].resumeFrom = rounds.checkpoints[i].all.back();
    TrialSet continued(std::move(trials), subset(), schedule("mop", 2));
    EXPECT_EQ(continued.status(0).epochsDone, 2);
    EXPECT_EQ(continued.status(1).epochsDone, 1);
    continued.train({0, 1, 2}, allUntil(3, 3));
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_TRUE(sameTensors(continued.model(i), whole.model(i))) << "configuration " << i + 1;
        EXPECT_EQ(ofKind(resumed.events[i], EventKind::Finished).size(), 1u);
        EXPECT_NE(ofKind(resumed.events[i], EventKind::Started)[0].message.find("resuming after epoch"),
                  std::string::npos);
    }
    // A stopped trial ends its run with what it reached and trains no more.
    stepwise.stop(1, "stopped by the test");
    EXPECT_EQ(ofKind(rounds.events[1], EventKind::Finished).size(), 1u);
    stepwise.train({1}, {3});
    EXPECT_EQ(stepwise.status(1).epochsDone, 1);
}

TEST(ModelHopper, CancelEndsEveryRunAsCancelled) {
    Trials t;
    std::atomic<bool> cancel{false};
    auto options = schedule("mop", 2);
    options.cancel = &cancel;
    int calls = 0;
    options.whileWaiting = [&] {
        if (++calls == 3)
            cancel = true;
    };
    TrialSet set(t.make(50), subset(), options);
    expectError<CancelledError>([&] { set.train({0, 1, 2}, allUntil(3, 50)); }, {"cancelled"});
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(ofKind(t.events[i], EventKind::Cancelled).size(), 1u) << "configuration " << i + 1;
        EXPECT_LT(set.status(i).epochsDone, 50);
    }
}

TEST(ModelHopper, BadConfigurationsAreNamed) {
    Trials t;
    auto trials = t.make(2);
    trials[1].config.optimizer.lr = -1;
    expectError<ConfigError>([&] { TrialSet(std::move(trials), subset(), schedule("mop", 2)); },
                             {"configuration 2", "learning rate"});
    expectError<ConfigError>([&] { TrialSet(t.make(1), subset(), schedule("hopscotch", 2)); },
                             {"hopscotch", "mop, task, sequential"});
    expectError<ConfigError>([&] { TrialSet(t.make(1), subset(), schedule("mop", 5000)); }, {"more segments"});
    auto wrong = t.make(1);
    wrong[0].architecture = bundledArchitecture("cifar_cnn6");
    expectError<ConfigError>([&] { TrialSet(std::move(wrong), subset(), schedule("task", 2)); }, {"configuration 1"});
}
