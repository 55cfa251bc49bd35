// Rows over the memory budget train out of core, through the real binary: the same losses as in
// memory to every digit, a cache reused while the source is unchanged and rebuilt when it changes
// or fails its checksum, a build killed half-way never taken for an entry, kill -9 and resume bit
// for bit, and (as root) a dataset three times a memory cgroup's limit trained without being killed.

#include "support/background.h"
#include "support/json_events.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace {

const std::string kFmnist = MPPDL_FASHION_MNIST_DIR;

class OutOfCoreCli : public ScratchDirTest {};

std::string quick(const std::string& data, int limit, int epochs = 2) {
    return "train --data " + data + " --arch mlp --epochs " + std::to_string(epochs) + " --limit " +
           std::to_string(limit) + " --batch-size 64 --optimizer sgd --lr 0.05 --momentum 0.9 --seed 3 --threads 2" +
           " --no-project --json";
}

bool has(const std::string& out, const std::string& text) { return out.find(text) != std::string::npos; }

/// The figures of a run that must repeat to every digit.
std::vector<double> figures(const std::string& out) {
    const auto finished = finishedEvent(out);
    std::vector<double> v;
    for (const char* key : {"test_loss", "test_accuracy", "train_loss", "val_loss"})
        if (finished.contains(key))
            v.push_back(finished[key].get<double>());
    EXPECT_GE(v.size(), 2u) << out;
    return v;
}

/// Cache entries (complete ones: with a manifest) and builds under `root`.
int entries(const std::string& root, bool building = false) {
    int n = 0;
    std::error_code error;
    for (const auto& e : fs::directory_iterator(root, error)) {
        const bool build = e.path().filename().string().find(".building-") != std::string::npos;
        n += building ? build : (!build && fs::exists(e.path() / "manifest.json"));
    }
    return n;
}

fs::path onlyEntry(const std::string& root) {
    for (const auto& e : fs::directory_iterator(root))
        if (fs::exists(e.path() / "manifest.json"))
            return e.path();
    return {};
}

} // namespace

TEST_F(OutOfCoreCli, TrainsTheSameAsInMemoryToEveryDigitAndReusesItsCache) {
    const std::string flags = quick(kFmnist, 3000);
    const auto memory = runMppdl(flags);
    ASSERT_EQ(memory.code, 0) << memory.out;
    EXPECT_FALSE(has(memory.out, "out of core")) << memory.out;

    const std::string outOfCore = flags + " --memory-budget 2M --cache-dir " + path("cache");
    const auto built = runMppdl(outOfCore);
    ASSERT_EQ(built.code, 0) << built.out;
    EXPECT_TRUE(has(built.out, "exceed the memory budget of 2.0 MB (--memory-budget 2M)")) << built.out;
    EXPECT_TRUE(has(built.out, "none built yet")) << built.out;
    EXPECT_EQ(figures(built.out), figures(memory.out));
    ASSERT_EQ(entries(path("cache")), 1);
    EXPECT_EQ(entries(path("cache"), true), 0);

    const auto reused = runMppdl(outOfCore);
    ASSERT_EQ(reused.code, 0) << reused.out;
    EXPECT_TRUE(has(reused.out, "out of core: the packed rows cached in")) << reused.out;
    EXPECT_FALSE(has(reused.out, "caching")) << reused.out;
    EXPECT_EQ(figures(reused.out), figures(memory.out));

    // Segments on threads read the one copy of the rows, out of core as in memory.
    const std::string segments = " --strategy model-averaging --segments 3 --sync-every 5";
    const auto a = runMppdl(flags + segments), b = runMppdl(outOfCore + segments);
    ASSERT_EQ(a.code, 0) << a.out;
    ASSERT_EQ(b.code, 0) << b.out;
    EXPECT_EQ(figures(a.out), figures(b.out));
}

TEST_F(OutOfCoreCli, CacheIsRebuiltWhenTheSourceChangesOrFailsItsChecksum) {
    fs::create_directories(path("data"));
    for (const auto& e : fs::directory_iterator(kFmnist))
        fs::copy_file(e.path(), path("data") + "/" + e.path().filename().string());
    const std::string flags = quick(path("data"), 1500, 1) + " --memory-budget 1M --cache-dir " + path("cache");
    const auto first = runMppdl(flags);
    ASSERT_EQ(first.code, 0) << first.out;
    const auto again = runMppdl(flags);
    EXPECT_FALSE(has(again.out, "caching")) << again.out;

    // The same bytes with a newer time: the cache cannot know they are the same, and rebuilds.
    const auto images = path("data") + "/train-images-idx3-ubyte.gz";
    fs::last_write_time(images, fs::last_write_time(images) + std::chrono::seconds(5));
    const auto changed = runMppdl(flags);
    ASSERT_EQ(changed.code, 0) << changed.out;
    EXPECT_TRUE(has(changed.out, "the source or the rows it holds changed since it was built")) << changed.out;
    EXPECT_EQ(entries(path("cache")), 1); // rebuilt in place
    EXPECT_EQ(figures(changed.out), figures(first.out));

    // A flipped byte of the training rows.
    const auto rows = onlyEntry(path("cache")) / "train.f32";
    {
        std::fstream f(rows, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(1000);
        f.put('\x7f');
    }
    const auto corrupt = runMppdl(flags);
    ASSERT_EQ(corrupt.code, 0) << corrupt.out;
    EXPECT_TRUE(has(corrupt.out, "train.f32 fails its checksum")) << corrupt.out;
    EXPECT_EQ(figures(corrupt.out), figures(first.out));
}

TEST_F(OutOfCoreCli, ABuildKilledHalfWayIsNeverReused) {
    const std::string flags = quick(kFmnist, 0, 1) + " --memory-budget 1M --cache-dir " + path("cache");
    {
        Background run(flags);
        // Killed as soon as its build has begun writing rows.
        bool writing = false;
        for (int i = 0; i < 6000 && !writing; ++i) {
            std::error_code error;
            for (const auto& e : fs::directory_iterator(path("cache"), error))
                writing = writing || fs::file_size(e.path() / "raw-train", error) > 0;
            if (!writing)
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        ASSERT_TRUE(writing) << "the build never started writing";
        run.kill9();
        EXPECT_EQ(run.wait(), 128 + SIGKILL);
    }
    EXPECT_EQ(entries(path("cache")), 0);
    EXPECT_EQ(entries(path("cache"), true), 1);
    // The next run builds afresh, clearing what the killed one left.
    const auto r = runMppdl(flags);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "none built yet")) << r.out;
    EXPECT_EQ(entries(path("cache")), 1);
    EXPECT_EQ(entries(path("cache"), true), 0);
}

TEST_F(OutOfCoreCli, KilledOutOfCoreRunResumesBitForBit) {
    const std::string flags = "train --data " + kFmnist +
                              " --arch fmnist_cnn --epochs 3 --limit 4000 --batch-size 64 --optimizer sgd --lr 0.05 "
                              "--momentum 0.9 --seed 5 --threads 2 --project p.mppdl --json --memory-budget 1M "
                              "--cache-dir " +
                              path("cache");
    {
        Background training(flags);
        ASSERT_TRUE(waitForProgressOfEpoch(training, 2)) << "never saw a progress event of epoch 2";
        training.kill9();
        EXPECT_EQ(training.wait(), 128 + SIGKILL);
    }
    auto r = runMppdl("resume 1 --project p.mppdl --json");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "out of core")) << r.out;
    const auto resumed = figures(r.out);
    r = runMppdl(flags);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(resumed, figures(r.out));
}

// ---- A dataset three times a memory cgroup's limit ----------------------------------------------

namespace {

/// Fashion-MNIST's training images and labels, tiled `copies` times into raw IDX files of `dir`:
/// copy k shifted right by k % 4 and down by k / 4 pixels (zeros shifted in), so that no two
/// copies are the same rows. The test split is Fashion-MNIST's own.
void writeTiledFashionMnist(const std::string& dir, int copies) {
    const auto readGz = [](const std::string& file) {
        gzFile in = gzopen(file.c_str(), "rb");
        std::vector<unsigned char> bytes;
        unsigned char buffer[1 << 16];
        int n;
        while (in && (n = gzread(in, buffer, sizeof buffer)) > 0)
            bytes.insert(bytes.end(), buffer, buffer + n);
        if (in)
            gzclose(in);
        return bytes;
    };
    const auto images = readGz(kFmnist + "/train-images-idx3-ubyte.gz");
    const auto labels = readGz(kFmnist + "/train-labels-idx1-ubyte.gz");
    ASSERT_EQ(images.size(), 16u + 60000u * 784u);
    const auto bigEndian = [](uint32_t v) {
        return std::vector<unsigned char>{static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                                          static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
    };
    const uint32_t rows = 60000u * uint32_t(copies);
    std::ofstream x(dir + "/train-images-idx3-ubyte", std::ios::binary),
        y(dir + "/train-labels-idx1-ubyte", std::ios::binary);
    for (const uint32_t v : {0x803u, rows, 28u, 28u})
        for (const auto b : bigEndian(v))
            x.put(static_cast<char>(b));
    for (const uint32_t v : {0x801u, rows})
        for (const auto b : bigEndian(v))
            y.put(static_cast<char>(b));
    std::vector<unsigned char> shifted(784);
    for (int k = 0; k < copies; ++k) {
        const int dx = k % 4, dy = k / 4;
        for (int i = 0; i < 60000; ++i) {
            const unsigned char* image = images.data() + 16 + size_t(i) * 784;
            for (int r = 0; r < 28; ++r)
                for (int c = 0; c < 28; ++c)
                    shifted[size_t(r * 28 + c)] = r >= dy && c >= dx ? image[(r - dy) * 28 + (c - dx)] : 0;
            x.write(reinterpret_cast<const char*>(shifted.data()), 784);
        }
        y.write(reinterpret_cast<const char*>(labels.data() + 8), 60000);
    }
    for (const char* test : {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
        fs::copy_file(kFmnist + "/" + test, dir + "/" + test);
}

/// A cgroup v1 memory group of `limit` bytes, removed on destruction; empty() where there is none
/// to make (not root, no v1 memory controller).
class MemoryGroup {
public:
    explicit MemoryGroup(int64_t limit) {
        const std::string base = "/sys/fs/cgroup/memory";
        if (geteuid() != 0 || !fs::exists(base + "/memory.limit_in_bytes"))
            return;
        m_dir = base + "/mppdl_test_" + std::to_string(getpid());
        std::error_code error;
        if (!fs::create_directory(m_dir, error)) {
            m_dir.clear();
            return;
        }
        std::ofstream(m_dir + "/memory.limit_in_bytes") << limit;
    }
    ~MemoryGroup() {
        if (!m_dir.empty())
            ::rmdir(m_dir.c_str()); // empty once its processes have ended
    }
    bool empty() const { return m_dir.empty(); }
    /// What runs a command inside it: the shell moves itself in, then becomes the command.
    std::string prefix() const { return "echo $$ > " + m_dir + "/cgroup.procs && exec "; }
    int64_t peak() const {
        std::ifstream in(m_dir + "/memory.max_usage_in_bytes");
        int64_t v = 0;
        in >> v;
        return v;
    }

private:
    std::string m_dir;
};

} // namespace

TEST_F(OutOfCoreCli, ThreeTimesTheCgroupLimitTrainsWithoutBeingKilled) {
    constexpr int64_t kLimit = int64_t(400) << 20;
    constexpr int kCopies = 4; // 240,000 rows: 753 MB of float32 rows (with the test split 784 MB)
    MemoryGroup group(kLimit);
    if (group.empty())
        GTEST_SKIP() << "needs root and a cgroup v1 memory controller";
    fs::create_directories(path("tiled"));
    writeTiledFashionMnist(path("tiled"), kCopies);
    const std::string flags = quick(path("tiled"), 0, 1) + " --cache-dir " + path("cache");

    // In memory the same run is killed: the limit is real.
    const auto killed = runMppdl(flags + " --memory-budget 100G", group.prefix());
    EXPECT_EQ(killed.code, 128 + SIGKILL) << killed.out;

    // Its default budget comes from the cgroup, and out of core it finishes.
    const auto r = runMppdl(flags, group.prefix());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "of the cgroup limit of 400 MB")) << r.out;
    EXPECT_TRUE(has(r.out, "exceed the memory budget")) << r.out;
    const auto finished = finishedEvent(r.out);
    EXPECT_GT(finished.value("test_accuracy", 0.0), 0.6) << r.out; // chance is 0.1
    EXPECT_LE(group.peak(), kLimit);
    fs::remove_all(path("tiled"));
    fs::remove_all(path("cache"));
}
