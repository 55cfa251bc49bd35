#include "mppdl/store/project.h"

#include "mppdl/core/build_info.h"
#include "mppdl/core/error.h"
#include "store/store_test_support.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <ctime>
#include <thread>

using namespace mppdl;
using namespace mppdl::store;
using namespace mppdl::store::testing;

namespace {

const std::string kSpec = R"({"layers": [{"type": "linear", "out": 10}]})";

DatasetRecord mnist() {
    DatasetRecord d;
    d.name = "mnist";
    d.kind = "idx";
    d.location = "/data/mnist";
    d.options = R"({"normalize": true})";
    d.schema = R"({"shape": [1, 28, 28]})";
    d.classNames = {"zero", "one", "two"};
    d.statistics = R"({"mean": 0.13})";
    return d;
}

Checkpoint checkpointOf(int epoch, std::optional<double> valAccuracy, bool withState = true) {
    Checkpoint c;
    c.epoch = epoch;
    c.valAccuracy = valAccuracy;
    c.wallSeconds = epoch * 1.5;
    c.weights = std::string("weights\0of epoch ", 17) + std::to_string(epoch);
    if (withState)
        c.state = "state of epoch " + std::to_string(epoch);
    return c;
}

/// A project with one architecture and one queued run; returns the run id.
int64_t addRun(Project& project, const std::string& name = {}) {
    const auto architecture = project.addArchitecture("mlp", kSpec, "first");
    NewRun run;
    run.name = name;
    run.architectureVersionId = architecture.id;
    run.epochs = 5;
    return project.createRun(run);
}

/// A pid that no process has: a child that has exited and been reaped.
pid_t deadPid() {
    const pid_t child = fork();
    if (child == 0)
        _exit(0);
    int status = 0;
    waitpid(child, &status, 0);
    return child;
}

std::vector<int> epochsOf(const std::vector<CheckpointInfo>& checkpoints) {
    std::vector<int> epochs;
    for (const auto& c : checkpoints)
        epochs.push_back(c.epoch);
    return epochs;
}

/// A project file with some of everything, closed, big enough to span several pages.
std::string makeProject(const TempDir& dir, const std::string& name = "project.mppdl") {
    const auto path = dir.file(name);
    auto project = Project::create(path);
    const auto run = addRun(project);
    project.saveCheckpoint(run, checkpointOf(1, 0.5), 2);
    std::vector<MetricPoint> points;
    for (int i = 0; i < 200; ++i)
        points.push_back({-1, 1, i, "progress", "train_loss", 1.0 / (i + 1), i * 0.1});
    project.appendMetrics(run, points);
    return path;
}

/// Expects open(path, access) to fail with a StorageError containing `parts`, the file's bytes to
/// stay the same, and no -wal/-shm file beside it.
void expectRefused(const std::string& path, Access access, std::initializer_list<std::string> parts) {
    const bool existed = exists(path);
    const bool isFile = std::filesystem::is_regular_file(path);
    const auto before = isFile ? readBytes(path) : std::string();
    expectError<StorageError>([&] { Project::open(path, access); }, parts);
    EXPECT_EQ(exists(path), existed);
    if (isFile)
        EXPECT_TRUE(readBytes(path) == before) << path << " was modified";
    EXPECT_FALSE(exists(path + "-wal")) << "a -wal file was left beside " << path;
    EXPECT_FALSE(exists(path + "-shm")) << "a -shm file was left beside " << path;
}

void expectRefusedBoth(const std::string& path, std::initializer_list<std::string> parts) {
    expectRefused(path, Access::Read, parts);
    expectRefused(path, Access::Write, parts);
}

void patch(const std::string& path, size_t offset, const std::string& bytes) {
    auto contents = readBytes(path);
    ASSERT_LE(offset + bytes.size(), contents.size());
    contents.replace(offset, bytes.size(), bytes);
    writeBytes(path, contents);
}

} // namespace

// --- creating and opening

TEST(StoreProject, CreateMakesACompleteProjectAndNothingElse) {
    TempDir dir;
    const auto path = dir.file("new.mppdl");
    {
        auto project = Project::create(path);
        EXPECT_EQ(project.path(), path);
        EXPECT_EQ(project.schemaVersion(), 1);
        EXPECT_TRUE(project.writable());
        EXPECT_EQ(project.integrityCheck(), "ok");
        EXPECT_TRUE(project.runs().empty());
        EXPECT_TRUE(project.datasets().empty());
        EXPECT_TRUE(project.architectures().empty());
    }
    // No temporary file, no journal left once closed.
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"new.mppdl"});

    const auto bytes = readBytes(path);
    ASSERT_GE(bytes.size(), 100u);
    EXPECT_EQ(bytes.substr(68, 4), "mpdl") << "application_id";
    EXPECT_EQ(bytes.substr(60, 4), std::string("\0\0\0\1", 4)) << "user_version";
    RawDb raw(path);
    EXPECT_EQ(raw.value("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(raw.value("SELECT value FROM meta WHERE key = 'created_by'"), versionString());
    EXPECT_EQ(raw.value("SELECT value FROM meta WHERE key = 'written_by'"), versionString());
}

TEST(StoreProject, CreateRefusesAnExistingPath) {
    TempDir dir;
    const auto text = dir.file("notes.mppdl");
    writeBytes(text, "my notes\n");
    expectError<StorageError>([&] { Project::create(text); }, {text, "already exists"});
    EXPECT_EQ(readBytes(text), "my notes\n");

    const auto project = makeProject(dir);
    const auto before = readBytes(project);
    expectError<StorageError>([&] { Project::create(project); }, {project, "already exists"});
    EXPECT_TRUE(readBytes(project) == before);
    EXPECT_EQ(dir.entries(), (std::vector<std::string>{"notes.mppdl", "project.mppdl"}));

    expectError<StorageError>([&] { Project::create(dir.file("no/such/folder/p.mppdl")); }, {"no such folder"});
}

TEST(StoreProject, OpenOrCreateCreatesOnceThenOpens) {
    TempDir dir;
    const auto path = dir.file("either.mppdl");
    int64_t run = 0;
    {
        auto project = Project::openOrCreate(path);
        run = addRun(project, "first");
    }
    auto project = Project::openOrCreate(path);
    EXPECT_TRUE(project.writable());
    ASSERT_TRUE(project.run(run));
    EXPECT_EQ(project.run(run)->name, "first");
}

TEST(StoreProject, SaveCopyWritesAWholeProjectWhileTheOriginalStaysOpen) {
    TempDir dir;
    const auto path = dir.file("original.mppdl");
    auto project = Project::create(path);
    const int64_t run = addRun(project, "copied");
    project.appendMetrics(run, {{-1, 1, 10, "epoch", "val_accuracy", 0.5, 1.0}});
    const auto copy = dir.file("copy.mppdl");
    project.saveCopy(copy); // the metrics are still in the original's WAL
    addRun(project, "after the copy");
    {
        auto saved = Project::open(copy, Access::Read);
        EXPECT_EQ(saved.integrityCheck(), "ok");
        ASSERT_EQ(saved.runs().size(), 1u);
        EXPECT_EQ(saved.runs().front().name, "copied");
        ASSERT_EQ(saved.metrics(run).size(), 1u);
        EXPECT_EQ(saved.metrics(run).front().value, 0.5);
    }
    EXPECT_EQ(project.runs().size(), 2u);
    const auto before = readBytes(copy);
    expectError<StorageError>([&] { project.saveCopy(copy); }, {copy, "already exists"});
    EXPECT_TRUE(readBytes(copy) == before);
    expectError<StorageError>([&] { project.saveCopy(dir.file("no/such/folder/p.mppdl")); }, {"no such folder"});
}

TEST(StoreProject, EveryRecordSurvivesReopening) {
    TempDir dir;
    const auto path = dir.file("roundtrip.mppdl");
    int64_t datasetId = 0, runId = 0, warmId = 0, evaluationId = 0;
    ArchitectureVersion architecture;
    Evaluation evaluation;
    evaluation.split = "test";
    evaluation.samples = 30;
    evaluation.loss = 0.25;
    evaluation.accuracy = 0.9;
    evaluation.classNames = {"zero", "one", "two"};
    evaluation.perClassAccuracy = {1.0, 0.8, 0.9};
    evaluation.perClassCount = {10, 10, 10};
    evaluation.confusion = {10, 0, 0, 1, 8, 1, 0, 1, 9};
    {
        auto project = Project::create(path);
        datasetId = project.registerDataset(mnist());
        architecture = project.addArchitecture("mlp", kSpec, "a note");
        NewRun warm;
        warm.architectureVersionId = architecture.id;
        warmId = project.createRun(warm);

        NewRun run;
        run.name = "baseline";
        run.datasetId = datasetId;
        run.architectureVersionId = architecture.id;
        run.strategy = "pipeline";
        run.segments = 2;
        run.epochs = 7;
        run.config = R"({"lr": 0.01})";
        run.versions = R"({"mppdl": "0.1.0"})";
        run.warmStartRun = warmId;
        run.warmStartEpoch = 3;
        runId = project.createRun(run);
        project.startRun(runId);
        project.setModelInfo(runId, R"({"classes": 3})");
        project.updateProgress(runId, {4, 3, 0.875, 12.5});
        project.appendMetrics(runId, {{0, 1, 10, "progress", "train_loss", 0.5, 1.25}});
        project.saveCheckpoint(runId, checkpointOf(1, 0.75), 3);
        evaluationId = project.saveEvaluation(runId, 1, evaluation);
        project.setTestAccuracy(runId, 0.9);
        project.endRun(runId, RunState::Failed, "data", "bad row 3");
    }

    auto project = Project::open(path, Access::Read);
    EXPECT_FALSE(project.writable());
    EXPECT_EQ(project.integrityCheck(), "ok");

    const auto datasets = project.datasets();
    ASSERT_EQ(datasets.size(), 1u);
    const auto& d = datasets[0];
    const auto expected = mnist();
    EXPECT_EQ(d.id, datasetId);
    EXPECT_EQ(d.name, expected.name);
    EXPECT_EQ(d.kind, expected.kind);
    EXPECT_EQ(d.location, expected.location);
    EXPECT_EQ(d.options, expected.options);
    EXPECT_EQ(d.schema, expected.schema);
    EXPECT_EQ(d.classNames, expected.classNames);
    EXPECT_EQ(d.statistics, expected.statistics);
    EXPECT_EQ(d.createdAt.size(), 20u) << d.createdAt;
    ASSERT_TRUE(project.dataset(datasetId));
    EXPECT_EQ(project.dataset(datasetId)->name, "mnist");
    EXPECT_FALSE(project.dataset(datasetId + 100));

    const auto a = project.architectureById(architecture.id);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->name, "mlp");
    EXPECT_EQ(a->version, 1);
    EXPECT_EQ(a->spec, kSpec);
    EXPECT_EQ(a->note, "a note");
    EXPECT_EQ(a->runs, 2);
    EXPECT_EQ(a->createdAt, architecture.createdAt);

    const auto r = project.run(runId);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->name, "baseline");
    EXPECT_EQ(r->datasetId, datasetId);
    EXPECT_EQ(r->architectureVersionId, architecture.id);
    EXPECT_EQ(r->architectureName, "mlp");
    EXPECT_EQ(r->architectureVersion, 1);
    EXPECT_EQ(r->strategy, "pipeline");
    EXPECT_EQ(r->segments, 2);
    EXPECT_EQ(r->config, R"({"lr": 0.01})");
    EXPECT_EQ(r->state, RunState::Failed);
    EXPECT_EQ(r->pid, getpid());
    EXPECT_FALSE(r->host.empty());
    EXPECT_EQ(r->versions, R"({"mppdl": "0.1.0"})");
    EXPECT_EQ(r->modelInfo, R"({"classes": 3})");
    EXPECT_EQ(r->createdAt.size(), 20u);
    EXPECT_EQ(r->startedAt.size(), 20u);
    EXPECT_EQ(r->endedAt.size(), 20u);
    EXPECT_EQ(r->createdAt[10], 'T');
    EXPECT_EQ(r->createdAt.back(), 'Z');
    EXPECT_GT(r->heartbeat, 1.7e9);
    EXPECT_EQ(r->epochs, 7);
    EXPECT_EQ(r->epochsDone, 4);
    EXPECT_EQ(r->bestEpoch, 3);
    EXPECT_EQ(r->bestValAccuracy, 0.875);
    EXPECT_EQ(r->testAccuracy, 0.9);
    EXPECT_EQ(r->seconds, 12.5);
    EXPECT_EQ(r->errorKind, "data");
    EXPECT_EQ(r->errorMessage, "bad row 3");
    EXPECT_EQ(r->warmStartRun, warmId);
    EXPECT_EQ(r->warmStartEpoch, 3);

    const auto warm = project.run(warmId);
    ASSERT_TRUE(warm);
    EXPECT_EQ(warm->state, RunState::Queued);
    EXPECT_EQ(warm->datasetId, 0);
    EXPECT_TRUE(warm->startedAt.empty());
    EXPECT_FALSE(warm->bestValAccuracy);
    EXPECT_FALSE(warm->testAccuracy);
    EXPECT_FALSE(warm->warmStartRun);

    const auto metrics = project.metrics(runId);
    ASSERT_EQ(metrics.size(), 1u);
    EXPECT_EQ(metrics[0].segment, 0);
    EXPECT_EQ(metrics[0].epoch, 1);
    EXPECT_EQ(metrics[0].step, 10);
    EXPECT_EQ(metrics[0].kind, "progress");
    EXPECT_EQ(metrics[0].name, "train_loss");
    EXPECT_EQ(metrics[0].value, 0.5);
    EXPECT_EQ(metrics[0].wallSeconds, 1.25);

    const auto stored = project.checkpoint(runId, 1);
    ASSERT_TRUE(stored);
    const auto original = checkpointOf(1, 0.75);
    EXPECT_EQ(stored->epoch, 1);
    EXPECT_EQ(stored->valAccuracy, 0.75);
    EXPECT_EQ(stored->wallSeconds, original.wallSeconds);
    EXPECT_TRUE(stored->weights == original.weights);
    EXPECT_EQ(stored->state, original.state);
    const auto infos = project.checkpoints(runId);
    ASSERT_EQ(infos.size(), 1u);
    EXPECT_EQ(infos[0].weightBytes, int64_t(original.weights.size()));
    EXPECT_EQ(infos[0].stateBytes, int64_t(original.state.size()));
    EXPECT_EQ(infos[0].createdAt.size(), 20u);

    const auto evaluations = project.evaluations(runId);
    ASSERT_EQ(evaluations.size(), 1u);
    EXPECT_EQ(evaluations[0].id, evaluationId);
    EXPECT_EQ(evaluations[0].epoch, 1);
    const auto& e = evaluations[0].evaluation;
    EXPECT_EQ(e.split, evaluation.split);
    EXPECT_EQ(e.samples, evaluation.samples);
    EXPECT_EQ(e.loss, evaluation.loss);
    EXPECT_EQ(e.accuracy, evaluation.accuracy);
    EXPECT_EQ(e.classNames, evaluation.classNames);
    EXPECT_EQ(e.perClassAccuracy, evaluation.perClassAccuracy);
    EXPECT_EQ(e.perClassCount, evaluation.perClassCount);
    EXPECT_EQ(e.confusion, evaluation.confusion);
    EXPECT_TRUE(project.evaluations(warmId).empty());
}

TEST(StoreProject, ReadAccessRefusesWrites) {
    TempDir dir;
    const auto path = makeProject(dir);
    auto project = Project::open(path, Access::Read);
    EXPECT_FALSE(project.writable());
    EXPECT_EQ(project.runs().size(), 1u);
    expectError<StorageError>([&] { project.registerDataset(mnist()); },
                              {path, "open for reading only", "register a dataset"});
    expectError<StorageError>([&] { project.reconcileInterrupted(); }, {path, "open for reading only"});
}

// --- refusals: the file is never modified

TEST(StoreProject, RefusesAMissingFile) {
    TempDir dir;
    const auto path = dir.file("missing.mppdl");
    expectRefusedBoth(path, {path + ": no such project file"});
    EXPECT_TRUE(dir.entries().empty());
}

TEST(StoreProject, RefusesFilesThatAreNotSqlite) {
    TempDir dir;
    const auto empty = dir.file("empty.mppdl");
    writeBytes(empty, "");
    expectRefusedBoth(empty, {empty, "is empty", "not an mppdl project (not an SQLite database)"});

    const auto text = dir.file("text.mppdl");
    writeBytes(text, "name,value\nlr,0.01\n" + std::string(200, 'x'));
    expectRefusedBoth(text, {text + " is not an mppdl project (not an SQLite database)"});

    const auto shortFile = dir.file("short.mppdl");
    writeBytes(shortFile, "SQLite");
    expectRefusedBoth(shortFile, {shortFile, "not an SQLite database"});

    expectRefusedBoth(dir.path().string(), {dir.path().string(), "is a directory"});
}

TEST(StoreProject, RefusesAnSqliteDatabaseThatIsNotAProject) {
    TempDir dir;
    const auto path = dir.file("other.db");
    {
        RawDb raw(path);
        raw.run("CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('ada');");
    }
    expectRefusedBoth(path, {path + " is an SQLite database but not an mppdl project"});

    // The same in WAL mode, with another application's id.
    const auto wal = dir.file("other-wal.db");
    {
        RawDb raw(wal);
        raw.run("PRAGMA journal_mode = WAL; PRAGMA application_id = 1234; CREATE TABLE t (x);");
    }
    expectRefusedBoth(wal, {wal, "not an mppdl project"});
}

TEST(StoreProject, RefusesACorruptHeader) {
    TempDir dir;
    // Page size 257: not a power of two.
    const auto pageSize = makeProject(dir, "page-size.mppdl");
    patch(pageSize, 16, "\x01\x01");
    expectRefusedBoth(pageSize, {pageSize + " is corrupt", "page size"});

    // The magic intact, the file cut inside the header.
    const auto header = makeProject(dir, "header.mppdl");
    writeBytes(header, readBytes(header).substr(0, 50));
    expectRefusedBoth(header, {header + " is corrupt"});
}

TEST(StoreProject, RefusesACorruptFirstPage) {
    TempDir dir;
    const auto path = makeProject(dir);
    patch(path, 100, std::string(4096 - 100, '\x5a'));
    expectRefusedBoth(path, {path + " is corrupt"});
}

TEST(StoreProject, RefusesATruncatedFile) {
    TempDir dir;
    const auto path = makeProject(dir);
    const auto bytes = readBytes(path);
    ASSERT_GT(bytes.size(), 3u * 4096) << "the fixture should span several pages";
    for (const size_t keep : {bytes.size() / 2 / 4096 * 4096, bytes.size() / 2 + 1000}) {
        writeBytes(path, bytes.substr(0, keep));
        expectRefusedBoth(path, {path + " is corrupt"});
    }
}

TEST(StoreProject, RefusesANewerSchemaNamingTheVersionThatWroteIt) {
    TempDir dir;
    const auto path = makeProject(dir);
    {
        RawDb raw(path);
        raw.run("UPDATE meta SET value = '9.9.9' WHERE key = 'written_by'");
    }
    patch(path, 60, std::string("\0\0\0\2", 4));
    expectRefusedBoth(path, {path +
                             " was written by a newer mppdl (project schema 2, written by mppdl 9.9.9);"
                             " this mppdl " +
                             versionString() + " reads schema 1: upgrade mppdl"});

    // When the version that wrote it cannot be read, the message still says what to do.
    patch(path, 100, std::string(4096 - 100, '\x5a'));
    expectRefusedBoth(path, {path + " was written by a newer mppdl (project schema 2)", "upgrade mppdl"});
}

TEST(StoreProject, RefusesWritingAReadOnlyFileButReadsIt) {
    TempDir dir;
    const auto path = makeProject(dir);
    ASSERT_EQ(chmod(path.c_str(), 0444), 0);
    expectRefused(path, Access::Write, {path + " is read-only: cannot record runs in it"});
    expectError<StorageError>([&] { Project::openOrCreate(path); }, {"read-only"});

    const auto before = readBytes(path);
    {
        auto project = Project::open(path, Access::Read);
        EXPECT_FALSE(project.writable());
        const auto runs = project.runs();
        ASSERT_EQ(runs.size(), 1u);
        EXPECT_EQ(runs[0].name, "mlp-1");
        EXPECT_EQ(project.metrics(runs[0].id).size(), 200u);
        EXPECT_EQ(project.integrityCheck(), "ok");
        expectError<StorageError>([&] { project.addArchitecture("x", "{}", ""); }, {path, "reading only"});
    }
    EXPECT_TRUE(readBytes(path) == before);
    EXPECT_FALSE(exists(path + "-wal"));
    EXPECT_FALSE(exists(path + "-shm"));
}

TEST(StoreProject, AReadOnlyFileWithALogIsReadThroughTheLog) {
    TempDir dir;
    const auto path = makeProject(dir);
    // A writer that opened the file before it was made read-only keeps committing to the log.
    auto writer = Project::open(path, Access::Write);
    ASSERT_EQ(chmod(path.c_str(), 0444), 0);
    addRun(writer, "after-chmod");
    ASSERT_TRUE(exists(path + "-wal"));
    auto reader = Project::open(path, Access::Read);
    ASSERT_EQ(reader.runs().size(), 2u);
    EXPECT_EQ(reader.runs()[1].name, "after-chmod");
}

TEST(StoreProject, AnOlderSchemaIsUpgradedWhenOpened) {
    TempDir dir;
    // A project at schema 0: marked as ours, nothing in it yet.
    auto makeOld = [&](const std::string& name) {
        const auto path = dir.file(name);
        RawDb raw(path);
        raw.run("PRAGMA journal_mode = WAL; PRAGMA application_id = 1836082284;");
        return path;
    };
    const auto forWriting = makeOld("old-write.mppdl");
    {
        auto project = Project::open(forWriting, Access::Write);
        EXPECT_EQ(project.schemaVersion(), 1);
        addRun(project);
    }
    RawDb raw(forWriting);
    EXPECT_EQ(raw.value("PRAGMA user_version"), "1");
    EXPECT_EQ(raw.value("SELECT value FROM meta WHERE key = 'written_by'"), versionString());

    // Reading a writable file upgrades it as well; a read-only one cannot be.
    const auto forReading = makeOld("old-read.mppdl");
    EXPECT_EQ(Project::open(forReading, Access::Read).schemaVersion(), 1);
    const auto readOnly = makeOld("old-read-only.mppdl");
    ASSERT_EQ(chmod(readOnly.c_str(), 0444), 0);
    expectRefused(readOnly, Access::Read, {readOnly, "project schema 0", "read-only", "make it writable"});
}

// --- datasets

TEST(StoreProject, RegisteringTheSameDatasetRefreshesIt) {
    TempDir dir;
    auto project = Project::create(dir.file("datasets.mppdl"));
    const auto first = project.registerDataset(mnist());

    auto again = mnist();
    again.name = "ignored";
    again.classNames = {"a", "b"};
    again.schema = R"({"shape": [784]})";
    again.statistics = R"({"mean": 0.2})";
    EXPECT_EQ(project.registerDataset(again), first);
    auto stored = project.dataset(first);
    ASSERT_TRUE(stored);
    EXPECT_EQ(stored->name, "mnist");
    EXPECT_EQ(stored->classNames, again.classNames);
    EXPECT_EQ(stored->schema, again.schema);
    EXPECT_EQ(stored->statistics, again.statistics);

    // Other options or another location: another dataset, under a name of its own.
    auto otherOptions = mnist();
    otherOptions.options = R"({"normalize": false})";
    auto otherLocation = mnist();
    otherLocation.location = "/elsewhere/mnist";
    const auto second = project.registerDataset(otherOptions);
    const auto third = project.registerDataset(otherLocation);
    EXPECT_NE(second, first);
    EXPECT_NE(third, second);
    EXPECT_EQ(project.dataset(second)->name, "mnist-2");
    EXPECT_EQ(project.dataset(third)->name, "mnist-3");
    EXPECT_EQ(project.datasets().size(), 3u);
}

// --- architectures

TEST(StoreProject, ArchitectureVersionsAreAddedOnlyForNewSpecs) {
    TempDir dir;
    auto project = Project::create(dir.file("architectures.mppdl"));
    bool created = false;
    const auto v1 = project.addArchitecture("mlp", kSpec, "first", &created);
    EXPECT_TRUE(created);
    EXPECT_EQ(v1.version, 1);
    EXPECT_EQ(v1.name, "mlp");

    // The same spec, also laid out differently, is the same version.
    EXPECT_EQ(project.addArchitecture("mlp", kSpec, "again", &created).id, v1.id);
    EXPECT_FALSE(created);
    const std::string relaid = "{ \"layers\" : [ { \"out\" : 10, \"type\" : \"linear\" } ] }";
    EXPECT_EQ(project.addArchitecture("mlp", relaid, "", &created).id, v1.id);
    EXPECT_FALSE(created);

    const auto v2 = project.addArchitecture("mlp", R"({"layers": []})", "second", &created);
    EXPECT_TRUE(created);
    EXPECT_EQ(v2.version, 2);
    // Going back to the first spec is a new version: only the latest is compared.
    EXPECT_EQ(project.addArchitecture("mlp", kSpec, "back", &created).version, 3);
    EXPECT_TRUE(created);
    project.addArchitecture("cnn", "{}", "");

    const auto versions = project.architectureVersions("mlp");
    ASSERT_EQ(versions.size(), 3u);
    EXPECT_EQ(versions[0].version, 1);
    EXPECT_EQ(versions[1].note, "second");
    EXPECT_EQ(versions[2].version, 3);
    EXPECT_TRUE(project.architectureVersions("nope").empty());
    EXPECT_EQ(project.architecture("mlp")->version, 3);
    EXPECT_EQ(project.architecture("mlp", 2)->id, v2.id);
    EXPECT_FALSE(project.architecture("mlp", 9));
    EXPECT_FALSE(project.architecture("nope"));

    NewRun run;
    run.architectureVersionId = v2.id;
    project.createRun(run);
    const auto summaries = project.architectures();
    ASSERT_EQ(summaries.size(), 2u);
    EXPECT_EQ(summaries[0].name, "cnn");
    EXPECT_EQ(summaries[1].name, "mlp");
    EXPECT_EQ(summaries[1].versions, 3);
    EXPECT_EQ(summaries[1].latest, 3);
    EXPECT_EQ(summaries[1].runs, 1);
    EXPECT_EQ(summaries[1].updatedAt, versions[2].createdAt);
    EXPECT_EQ(project.architectureById(v2.id)->runs, 1);
    expectError<StorageError>([&] { project.addArchitecture("", "{}", ""); }, {"without a name"});
}

TEST(StoreProject, ArchitectureVersionsCannotBeChanged) {
    TempDir dir;
    const auto path = dir.file("immutable.mppdl");
    auto project = Project::create(path);
    const auto v1 = project.addArchitecture("mlp", kSpec, "");
    RawDb raw(path);
    std::string message;
    EXPECT_NE(raw.exec("UPDATE architecture_versions SET spec = '{}' WHERE id = " + std::to_string(v1.id), &message),
              SQLITE_OK);
    EXPECT_NE(message.find("immutable"), std::string::npos) << message;
    EXPECT_EQ(project.architectureById(v1.id)->spec, kSpec);
    EXPECT_NE(raw.exec("INSERT INTO architecture_versions (architecture_id, version, spec, created_at)"
                       " VALUES (1, 1, '{}', 'now')",
                       &message),
              SQLITE_OK)
        << "a second version 1";
}

// --- runs

TEST(StoreProject, RunsGetDefaultNamesAndAreFoundByIdOrName) {
    TempDir dir;
    const auto path = dir.file("runs.mppdl");
    auto project = Project::create(path);
    const auto first = addRun(project);
    const auto second = addRun(project, "shared");
    const auto third = addRun(project, "shared");
    const auto fourth = addRun(project, "unique");

    EXPECT_EQ(project.run(first)->name, "mlp-" + std::to_string(first));
    EXPECT_EQ(project.findRun(std::to_string(first))->id, first);
    EXPECT_EQ(project.findRun("mlp-" + std::to_string(first))->id, first);
    EXPECT_EQ(project.findRun("unique")->id, fourth);
    EXPECT_FALSE(project.findRun("nobody"));
    EXPECT_FALSE(project.findRun("999"));
    expectError<StorageError>([&] { project.findRun("shared"); },
                              {path, "'shared'", std::to_string(second) + ", " + std::to_string(third)});

    const auto all = project.runs();
    ASSERT_EQ(all.size(), 4u);
    EXPECT_EQ(all[0].id, first);
    EXPECT_EQ(all[3].id, fourth);
    EXPECT_EQ(all[1].state, RunState::Queued);
}

TEST(StoreProject, RunLifecycle) {
    TempDir dir;
    const auto path = dir.file("lifecycle.mppdl");
    auto project = Project::create(path);
    const auto id = addRun(project);
    project.startRun(id);
    auto r = project.run(id);
    EXPECT_EQ(r->state, RunState::Running);
    EXPECT_EQ(r->pid, getpid());
    const auto started = r->startedAt;
    EXPECT_EQ(project.reconcileInterrupted(), 0) << "this process is alive";

    project.endRun(id, RunState::Interrupted);
    // A resume starts it again: the first start time stays.
    project.startRun(id);
    EXPECT_EQ(project.run(id)->startedAt, started);
    EXPECT_TRUE(project.run(id)->endedAt.empty());
    project.endRun(id, RunState::Finished);
    EXPECT_EQ(project.run(id)->state, RunState::Finished);
    EXPECT_FALSE(project.run(id)->endedAt.empty());

    expectError<StorageError>([&] { project.endRun(id, RunState::Running); }, {path, "cannot end run"});
    expectError<StorageError>([&] { project.startRun(999); }, {path, "no run with id 999"});
    expectError<StorageError>([&] { project.setTestAccuracy(999, 0.5); }, {path, "no run with id 999"});
    expectError<StorageError>([&] { project.appendMetrics(999, {}); }, {path, "no run with id 999"});
    expectError<StorageError>([&] { project.saveCheckpoint(999, checkpointOf(1, 0.5), 2); }, {"no run with id 999"});
    NewRun bad;
    bad.architectureVersionId = 77;
    expectError<StorageError>([&] { project.createRun(bad); }, {path, "no architecture version with id 77"});
    EXPECT_EQ(parseRunState("cancelled"), RunState::Cancelled);
    EXPECT_STREQ(toString(RunState::Interrupted), "interrupted");
    EXPECT_THROW(parseRunState("paused"), StorageError);
}

TEST(StoreProject, ARunWhoseProcessIsGoneReadsAsInterrupted) {
    TempDir dir;
    const auto path = dir.file("interrupted.mppdl");
    auto project = Project::create(path);
    const auto local = addRun(project, "local");
    const auto remoteOld = addRun(project, "remote-old");
    const auto remoteFresh = addRun(project, "remote-fresh");
    const auto alive = addRun(project, "alive");
    for (const auto id : {local, remoteOld, remoteFresh, alive})
        project.startRun(id);

    RawDb raw(path);
    raw.run("UPDATE runs SET pid = " + std::to_string(deadPid()) + " WHERE id = " + std::to_string(local));
    const double now = double(std::time(nullptr));
    raw.run("UPDATE runs SET host = 'elsewhere', heartbeat = " + std::to_string(now - 3600) +
            " WHERE id = " + std::to_string(remoteOld));
    raw.run("UPDATE runs SET host = 'elsewhere', heartbeat = " + std::to_string(now - 60) +
            " WHERE id = " + std::to_string(remoteFresh));

    EXPECT_EQ(project.run(local)->state, RunState::Interrupted);
    EXPECT_EQ(project.run(remoteOld)->state, RunState::Interrupted);
    EXPECT_EQ(project.run(remoteFresh)->state, RunState::Running);
    EXPECT_EQ(project.run(alive)->state, RunState::Running);
    // Only read that way so far.
    EXPECT_EQ(raw.value("SELECT state FROM runs WHERE id = " + std::to_string(local)), "running");

    EXPECT_EQ(project.reconcileInterrupted(), 2);
    EXPECT_EQ(raw.value("SELECT state FROM runs WHERE id = " + std::to_string(local)), "interrupted");
    EXPECT_EQ(raw.value("SELECT state FROM runs WHERE id = " + std::to_string(remoteOld)), "interrupted");
    EXPECT_EQ(raw.value("SELECT state FROM runs WHERE id = " + std::to_string(alive)), "running");
    EXPECT_FALSE(project.run(local)->endedAt.empty());
    EXPECT_EQ(project.reconcileInterrupted(), 0);

    // A run that is running elsewhere cannot be started here too.
    expectError<StorageError>([&] { project.startRun(remoteFresh); }, {path, "already running"});
    // An interrupted one can be resumed.
    project.startRun(local);
    EXPECT_EQ(project.run(local)->state, RunState::Running);
}

// --- metrics

TEST(StoreProject, MetricsRoundTripInStepOrderAndTruncate) {
    TempDir dir;
    const auto path = dir.file("metrics.mppdl");
    auto project = Project::create(path);
    const auto id = addRun(project);
    RawDb raw(path);
    raw.run("UPDATE runs SET heartbeat = 0");

    std::vector<MetricPoint> points;
    for (int epoch = 1; epoch <= 3; ++epoch) {
        points.push_back({-1, epoch, epoch * 10, "progress", "train_loss", 1.0 / epoch, epoch * 2.0});
        points.push_back({-1, epoch, epoch * 10, "epoch", "val_accuracy", 0.5 + epoch * 0.1, epoch * 2.0});
        points.push_back({-1, epoch, epoch * 10, "epoch", "lr", 0.01, epoch * 2.0});
    }
    points.push_back({1, 3, 5, "progress", "train_loss", std::nan(""), 1.0});
    project.appendMetrics(id, points);
    EXPECT_GT(project.run(id)->heartbeat, 1.7e9) << "appendMetrics refreshes the heartbeat";

    const auto all = project.metrics(id);
    ASSERT_EQ(all.size(), points.size());
    // By step, then name.
    EXPECT_EQ(all[0].step, 5);
    EXPECT_EQ(all[0].segment, 1);
    EXPECT_TRUE(std::isnan(all[0].value)) << "NaN survives as NaN";
    EXPECT_EQ(all[1].name, "lr");
    EXPECT_EQ(all[2].name, "train_loss");
    EXPECT_EQ(all[3].name, "val_accuracy");
    EXPECT_EQ(all[3].value, 0.6);
    EXPECT_EQ(all[9].step, 30);

    const auto epochs = project.metrics(id, "epoch");
    EXPECT_EQ(epochs.size(), 6u);
    for (const auto& p : epochs)
        EXPECT_EQ(p.kind, "epoch");
    EXPECT_TRUE(project.metrics(id, "test").empty());

    project.truncateMetrics(id, 1);
    const auto kept = project.metrics(id);
    ASSERT_EQ(kept.size(), 3u);
    for (const auto& p : kept)
        EXPECT_EQ(p.epoch, 1);
    project.truncateMetrics(id, 0);
    EXPECT_TRUE(project.metrics(id).empty());
}

// --- checkpoints

TEST(StoreProject, CheckpointsKeepTheLastAndTheBest) {
    TempDir dir;
    auto project = Project::create(dir.file("checkpoints.mppdl"));
    const auto id = addRun(project);
    const double accuracies[] = {0.5, 0.9, 0.7, 0.8, 0.85};
    for (int epoch = 1; epoch <= 5; ++epoch)
        project.saveCheckpoint(id, checkpointOf(epoch, accuracies[epoch - 1]), 2);

    const auto kept = project.checkpoints(id);
    EXPECT_EQ(epochsOf(kept), (std::vector<int>{2, 4, 5}));
    EXPECT_EQ(kept[0].stateBytes, 0) << "the best keeps only its weights once not among the last";
    EXPECT_GT(kept[0].weightBytes, 0);
    EXPECT_GT(kept[1].stateBytes, 0);
    EXPECT_GT(kept[2].stateBytes, 0);
    EXPECT_EQ(kept[0].valAccuracy, 0.9);

    const auto best = project.checkpoint(id, 2);
    ASSERT_TRUE(best);
    EXPECT_TRUE(best->weights == checkpointOf(2, 0.9).weights);
    EXPECT_TRUE(best->state.empty());
    EXPECT_FALSE(project.checkpoint(id, 3));
    EXPECT_EQ(project.bestCheckpointEpoch(id), 2);
    EXPECT_EQ(project.lastCheckpointEpoch(id), 5);
    const auto resumable = project.lastResumable(id);
    ASSERT_TRUE(resumable);
    EXPECT_EQ(resumable->epoch, 5);
    EXPECT_EQ(resumable->state, checkpointOf(5, 0.85).state);

    // Saving an epoch again replaces it.
    project.saveCheckpoint(id, checkpointOf(5, 0.95), 2);
    EXPECT_EQ(project.checkpoint(id, 5)->valAccuracy, 0.95);
    EXPECT_EQ(project.bestCheckpointEpoch(id), 5);
    EXPECT_EQ(epochsOf(project.checkpoints(id)), (std::vector<int>{4, 5})) << "epoch 2 is no longer the best";
}

TEST(StoreProject, CheckpointBestIsTheEarliestOfEqualsAndNoneWithoutValidation) {
    TempDir dir;
    auto project = Project::create(dir.file("ties.mppdl"));
    const auto tied = addRun(project, "tied");
    for (int epoch = 1; epoch <= 4; ++epoch)
        project.saveCheckpoint(tied, checkpointOf(epoch, epoch == 1 || epoch == 2 ? 0.9 : 0.5), 1);
    EXPECT_EQ(epochsOf(project.checkpoints(tied)), (std::vector<int>{1, 4}));
    EXPECT_EQ(project.bestCheckpointEpoch(tied), 1);

    const auto unvalidated = addRun(project, "unvalidated");
    for (int epoch = 1; epoch <= 3; ++epoch)
        project.saveCheckpoint(unvalidated, checkpointOf(epoch, std::nullopt, epoch != 3), 2);
    EXPECT_EQ(epochsOf(project.checkpoints(unvalidated)), (std::vector<int>{2, 3}));
    EXPECT_EQ(project.bestCheckpointEpoch(unvalidated), 0);
    // Epoch 3 was saved without resume state: the last resumable is epoch 2.
    EXPECT_EQ(project.lastResumable(unvalidated)->epoch, 2);

    const auto none = addRun(project, "none");
    EXPECT_EQ(project.bestCheckpointEpoch(none), 0);
    EXPECT_EQ(project.lastCheckpointEpoch(none), 0);
    EXPECT_FALSE(project.lastResumable(none));
    EXPECT_TRUE(project.checkpoints(none).empty());
}

// One flipped byte of a checkpoint's weights or state is a storage error when it is read (eval,
// predict, export, resume and warm starts all read through these), never garbage weights.
TEST(StoreProject, ADamagedCheckpointIsAStorageErrorWhenRead) {
    TempDir dir;
    const auto path = dir.file("damaged.mppdl");
    int64_t id = 0;
    {
        auto project = Project::create(path);
        id = addRun(project);
        project.saveCheckpoint(id, checkpointOf(1, 0.5), 3);
        project.saveCheckpoint(id, checkpointOf(2, 0.6), 3);
        EXPECT_TRUE(project.checkpoint(id, 1)->weights == checkpointOf(1, 0.5).weights) << "read back whole";
    }
    const auto flip = [&](const std::string& column, int epoch) {
        RawDb raw(path);
        raw.run("UPDATE checkpoints SET " + column + " = CAST(substr(" + column + ", 1, 29) || (CASE WHEN substr(" +
                column + ", 30, 1) = X'5A' THEN X'5B' ELSE X'5A' END) || substr(" + column +
                ", 31) AS BLOB) WHERE epoch = " + std::to_string(epoch));
    };
    flip("weights", 1);
    flip("state", 2);
    auto project = Project::open(path, Access::Read);
    expectError<StorageError>([&] { project.checkpoint(id, 1); },
                              {"the checkpoint of run " + std::to_string(id) + ", epoch 1 (weights) is damaged",
                               "fail their checksum"});
    expectError<StorageError>([&] { project.lastResumable(id); }, {"epoch 2 (resume state) is damaged"});
    // The listing still works: it reads no blob.
    EXPECT_EQ(epochsOf(project.checkpoints(id)), (std::vector<int>{1, 2}));
    // The check reads every one and names both.
    const auto check = project.checkCheckpoints();
    EXPECT_EQ(check.checked, 2);
    EXPECT_EQ(check.unchecked, 0);
    ASSERT_EQ(check.problems.size(), 2u);
    EXPECT_NE(check.problems[0].find("epoch 1 (weights) is damaged"), std::string::npos) << check.problems[0];
    EXPECT_NE(check.problems[1].find("epoch 2 (resume state) is damaged"), std::string::npos) << check.problems[1];
}

// A checkpoint over SQLite's limit for one value (10^9 bytes) is refused with a message that
// says so, and the project keeps what it had.
TEST(StoreProject, ACheckpointLargerThanSqliteKeepsIsAClearStorageError) {
    TempDir dir;
    auto project = Project::create(dir.file("large.mppdl"));
    const auto id = addRun(project);
    project.saveCheckpoint(id, checkpointOf(1, 0.5), 3);
    auto huge = checkpointOf(2, 0.6);
    huge.weights.assign(size_t(1000) * 1000 * 1000, 'w');
    expectError<StorageError>(
        [&] { project.saveCheckpoint(id, huge, 3); },
        {"the checkpoint of run " + std::to_string(id) + ", epoch 2 (weights) is 1000000000 bytes",
         "SQLite keeps in one value", "--no-project --save FILE"});
    EXPECT_EQ(epochsOf(project.checkpoints(id)), (std::vector<int>{1}));
    EXPECT_TRUE(project.checkCheckpoints().problems.empty());
}

TEST(StoreProject, DeletingARunDeletesItsChildren) {
    TempDir dir;
    const auto path = dir.file("cascade.mppdl");
    auto project = Project::create(path);
    const auto id = addRun(project);
    project.appendMetrics(id, {{-1, 1, 1, "epoch", "val_accuracy", 0.5, 1}});
    project.saveCheckpoint(id, checkpointOf(1, 0.5), 2);
    Evaluation evaluation;
    evaluation.split = "test";
    project.saveEvaluation(id, 1, evaluation);

    RawDb raw(path);
    raw.run("PRAGMA foreign_keys = ON; DELETE FROM runs WHERE id = " + std::to_string(id));
    EXPECT_TRUE(project.metrics(id).empty());
    EXPECT_TRUE(project.checkpoints(id).empty());
    EXPECT_TRUE(project.evaluations(id).empty());
    EXPECT_EQ(project.integrityCheck(), "ok");
}

// --- concurrency

TEST(StoreProject, ReadersAndAWriterShareTheFile) {
    TempDir dir;
    const auto path = dir.file("shared.mppdl");
    auto writer = Project::create(path);
    const auto id = addRun(writer);
    writer.startRun(id);
    auto reader = Project::open(path, Access::Read);

    std::atomic<bool> done{false};
    std::atomic<int> reads{0};
    std::string readerError;
    std::thread background([&] {
        try {
            while (!done) {
                // Both a long-lived connection and fresh ones, opened while the writer commits.
                auto project = Project::open(path, Access::Read);
                const auto runs = project.runs();
                if (runs.size() != 1)
                    throw std::runtime_error("saw " + std::to_string(runs.size()) + " runs");
                const auto points = project.metrics(id);
                if (points.size() % 3 != 0)
                    throw std::runtime_error("saw half a transaction: " + std::to_string(points.size()) + " points");
                project.checkpoints(id);
                ++reads;
            }
        } catch (const std::exception& e) {
            readerError = e.what();
        }
    });

    constexpr int kTransactions = 300;
    try {
        for (int i = 0; i < kTransactions; ++i) {
            std::vector<MetricPoint> points;
            for (int j = 0; j < 3; ++j)
                points.push_back({-1, i / 10 + 1, i, "progress", "m" + std::to_string(j), double(i), double(i)});
            writer.appendMetrics(id, points);
            if (i % 10 == 9)
                writer.saveCheckpoint(id, checkpointOf(i / 10 + 1, 0.5), 2);
            EXPECT_EQ(reader.metrics(id).size() % 3, 0u);
        }
    } catch (const std::exception& e) {
        ADD_FAILURE() << "writer: " << e.what();
    }
    // Let the reader finish at least a few rounds when the writer was quick.
    while (reads < 3 && readerError.empty())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    done = true;
    background.join();
    EXPECT_EQ(readerError, "");
    EXPECT_GE(reads.load(), 3);
    EXPECT_EQ(reader.metrics(id).size(), size_t(3 * kTransactions));
    EXPECT_EQ(reader.integrityCheck(), "ok");
}

TEST(StoreProject, TwoWritersTakeTurns) {
    TempDir dir;
    const auto path = dir.file("two-writers.mppdl");
    auto first = Project::create(path);
    const auto id = addRun(first);
    auto second = Project::open(path, Access::Write);

    std::string error;
    std::thread other([&] {
        try {
            for (int i = 0; i < 100; ++i)
                second.appendMetrics(id, {{-1, 1, i, "progress", "second", double(i), 0}});
        } catch (const std::exception& e) {
            error = e.what();
        }
    });
    for (int i = 0; i < 100; ++i)
        first.appendMetrics(id, {{-1, 1, i, "progress", "first", double(i), 0}});
    other.join();
    EXPECT_EQ(error, "");
    EXPECT_EQ(first.metrics(id).size(), 200u);
}

// A process that opens a project while it already has it open (the workbenches read the file
// again and again while a run writes it) must not drop the first connection's locks: the header
// check's open and close of the file used to release them, and the next process to close its
// connection then took itself for the last one, checkpointed and deleted the -wal file the first
// connection still wrote to. The second run below was lost that way.
TEST(StoreProject, OpeningAgainKeepsTheLocksOfTheConnectionAlreadyOpen) {
    TempDir dir;
    const auto path = dir.file("shared.mppdl");
    auto writer = Project::create(path);
    addRun(writer, "first");
    {
        const auto reader = Project::open(path, Access::Read);
        EXPECT_EQ(reader.runs().size(), 1u);
    }
    // Another process opens and closes the project.
    ASSERT_EQ(std::system(("sqlite3 " + path + " 'SELECT count(*) FROM runs' >/dev/null").c_str()), 0);
    addRun(writer, "second");
    // A third process sees both runs, and the file is sound.
    const auto count = [&] {
        std::string out;
        FILE* pipe = popen(("sqlite3 " + path + " 'SELECT count(*) FROM runs; PRAGMA integrity_check' 2>&1").c_str(),
                           "r");
        char buf[256];
        while (pipe && fgets(buf, sizeof buf, pipe))
            out += buf;
        if (pipe)
            pclose(pipe);
        return out;
    };
    EXPECT_EQ(count(), "2\nok\n");
    EXPECT_EQ(writer.runs().size(), 2u);
}
