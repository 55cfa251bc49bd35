// MADlib's tables and models as MADlib users have them: its CIFAR-10 sample rows (height x width x
// channels REAL[]) and Keras model, its packed tables (training_preprocessor_dl's output), and a
// model trained here written back as a row of a model architecture table that a NumPy reference
// reads the way madlib_keras_predict_byom() does.

#include "pg_test_db.h"

#include "support/json_events.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <sstream>

namespace {

bool has(const std::string& out, const std::string& text) { return out.find(text) != std::string::npos; }

class Madlib : public ScratchDirTest {
protected:
    void SetUp() override {
        MPPDL_REQUIRE_POSTGRES();
        ScratchDirTest::SetUp();
        db = std::make_unique<mppdl::data::PgConnection>(testConnection(), "the test database");
        conn = " --conn " + shellQuote(testConnection());
    }
    std::unique_ptr<mppdl::data::PgConnection> db;
    std::string conn;
};

} // namespace

// MADlib's own CIFAR-10 sample and Keras model: imported, trained on the rows as they are,
// predicted back from rows without a label, exported as MADlib keeps models, and that row read
// as predict_byom reads it gives mppdl's probabilities.
TEST_F(Madlib, CifarSampleAndKerasModelAsMadlibsTestsHaveThem) {
    auto r = runCommand("psql " + shellQuote(testConnection()) + " -X -q -v ON_ERROR_STOP=1 -f " +
                        std::string(MPPDL_TEST_FIXTURES) + "/madlib_cifar_10_sample.sql");
    ASSERT_EQ(r.code, 0) << r.out;
    // As load_keras_model('model_arch', json, NULL, 'cifar cnn', '...') names a model.
    db->query("UPDATE model_arch SET name = 'cifar cnn', description = 'two classes' WHERE model_id = 1");

    r = runMppdl("arch import --from-table model_arch --id 1" + conn + " --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "imported cifar_cnn version 1 (8 layers, 15,298 parameters)")) << r.out;
    r = runMppdl("arch import --from-table model_arch --id 1" + conn + " --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "unchanged: cifar_cnn version 1")) << r.out;
    // The row without a name gets one of its own, not a version of the first.
    r = runMppdl("arch import --from-table model_arch --id 2" + conn + " --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "imported model_arch_model_2 version 1")) << r.out;
    EXPECT_TRUE(has(r.out, "36,901 parameters")) << r.out;

    // Keras' parameter counts: conv 3x3x3x32 + 32 = 896, dense 7200x2 + 2 = 14,402.
    r = runMppdl("arch show cifar_cnn --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "Imported from MADlib table model_arch, model_id 1: two classes")) << r.out;
    for (const char* text : {"896", "14,402", "32x30x30", "7200", "15,298", "layout hwc"})
        EXPECT_TRUE(has(r.out, text)) << text << "\n" << r.out;
    // The Keras JSON file itself, shown as imported.
    const auto keras = db->query("SELECT model_arch::text FROM model_arch WHERE model_id = 1").text(0, 0);
    std::ofstream(path("cifar.json")) << keras;
    r = runMppdl("arch show cifar.json");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "Imported from Keras JSON cifar.json")) << r.out;
    EXPECT_TRUE(has(r.out, "14,402")) << r.out;

    // The rows are 32x32x3 arrays: read channels last, transposed once.
    r = runMppdl("data show pg:cifar_10_sample --label y --layout hwc" + conn);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "samples  3x32x32 float32 (kept height x width x channels: layout hwc")) << r.out;
    r = runMppdl("data show pg:cifar_10_sample --label y" + conn);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "if their channels come last, --layout hwc")) << r.out;

    // Trained as the rows are: the Keras model's Input says hwc.
    r = runMppdl("train --data pg:cifar_10_sample --label y --arch cifar_cnn --epochs 2 --val-fraction 0 --seed 5 "
                 "--project p.mppdl --json" +
                 conn);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "transposed to 3x32x32")) << r.out;
    const auto finished = finishedEvent(r.out);
    EXPECT_EQ(finished.value("epoch", 0), 2) << r.out;

    // Predicted back from rows without the label column.
    r = runMppdl("predict --run 1 --data \"pg:(SELECT id, x FROM cifar_10_sample)\" --id id --out p.csv" + conn +
                 " --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    std::ifstream csv(path("p.csv"));
    std::string header, line;
    std::getline(csv, header);
    int lines = 0;
    while (std::getline(csv, line))
        ++lines;
    EXPECT_EQ(lines, 2) << header;

    // Back to MADlib: a row of its model architecture table, checked by the NumPy reference.
    r = runMppdl("export --run 1 --format madlib --table model_arch --json" + conn + " --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    const auto exported = nlohmann::json::parse(r.out.substr(r.out.find('{')));
    EXPECT_EQ(exported["model_id"], 3) << r.out;
    EXPECT_EQ(exported["weights"], 15298) << r.out;
    std::ostringstream constant;
    constant.precision(17);
    constant << exported["normalizing_const"].get<double>();
    r = runCommand(std::string(MPPDL_SYSTEM_PYTHON) + " " + MPPDL_TEST_FIXTURES +
                   "/../madlib_keras_reference.py --conn " + shellQuote(testConnection()) +
                   " --table model_arch --model-id 3 --rows 'SELECT id, x FROM cifar_10_sample ORDER BY id' "
                   "--normalizing-const " +
                   constant.str() + " --predictions p.csv");
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "15298 weights in 4 arrays [[3, 3, 3, 32], [32], [7200, 2], [2]]")) << r.out;

    // Or as SQL for psql.
    r = runMppdl("export --run 1 --format madlib --out m.sql --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    std::ifstream sql(path("m.sql"));
    const std::string text((std::istreambuf_iterator<char>(sql)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(has(text, "CREATE TABLE IF NOT EXISTS \"model_arch_library\"")) << text.substr(0, 400);
    db->query("DROP TABLE IF EXISTS model_arch_library");
    r = runCommand("psql " + shellQuote(testConnection()) + " -X -q -v ON_ERROR_STOP=1 -f m.sql");
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(db->query("SELECT length(model_weights) FROM model_arch_library").text(0, 0), "61192");
    db->query("DROP TABLE model_arch_library");
    db->query("DROP TABLE model_arch");
    db->query("DROP TABLE cifar_10_sample");
}

namespace {

/// Fashion-MNIST rows as MADlib keeps images, a REAL[] of 28x28x1 a row, and the same rows packed as
/// training_preprocessor_dl('rows', 'packed', 'label', 'x', buffer_size, 255) packs them: x and
/// label bytea (float32 of x * float(1/255), one-hot int16), x_shape and label_shape, buffer_id,
/// and packed_summary with MADlib 2's columns. The buffers keep the rows' order (MADlib shuffles).
void createMadlibTables(mppdl::data::PgConnection& db, const std::string& rowsTable, const std::string& packed,
                        const mppdl::data::Dataset& rows, int64_t bufferSize) {
    const auto x = rows.features().reshape({rows.size(), -1}).contiguous();
    const int64_t n = x.size(0), width = x.size(1), classes = 10;
    const auto* px = x.data_ptr<uint8_t>();
    db.query("DROP TABLE IF EXISTS " + rowsTable);
    db.query("CREATE TABLE " + rowsTable + " (id integer, label integer, x real[])");
    std::string text;
    for (int64_t r = 0; r < n; ++r) {
        text += std::to_string(r) + "\t" + std::to_string(rows.labels()[r].item<int64_t>()) + "\t{";
        for (int64_t h = 0; h < 28; ++h) {
            text += h ? ",{" : "{";
            for (int64_t w = 0; w < 28; ++w)
                text += (w ? ",{" : "{") + std::to_string(px[r * width + h * 28 + w]) + "}";
            text += "}";
        }
        text += "}\n";
    }
    copyIn(db, "COPY " + rowsTable + " FROM STDIN", text);

    static const char* hex = "0123456789abcdef";
    auto hexOf = [](const void* data, size_t bytes) {
        std::string out = "\\\\x";
        const auto* b = static_cast<const uint8_t*>(data);
        for (size_t i = 0; i < bytes; ++i) {
            out += hex[b[i] >> 4];
            out += hex[b[i] & 15];
        }
        return out;
    };
    // array_scalar_mult(x::real[], (1/255)::real): float8 arithmetic rounded to float4.
    const float reciprocal = float(1.0 / 255.0);
    db.query("DROP TABLE IF EXISTS " + packed);
    db.query("DROP TABLE IF EXISTS " + packed + "_summary");
    db.query("CREATE TABLE " + packed +
             " (x bytea, label bytea, x_shape integer[], label_shape integer[], buffer_id integer)");
    text.clear();
    for (int64_t b = 0, begin = 0; begin < n; ++b, begin += bufferSize) {
        const int64_t count = std::min(bufferSize, n - begin);
        std::vector<float> xs;
        std::vector<int16_t> ys(size_t(count * classes), 0);
        for (int64_t r = begin; r < begin + count; ++r) {
            for (int64_t k = 0; k < width; ++k)
                xs.push_back(float(double(float(px[r * width + k])) * double(reciprocal)));
            ys[size_t((r - begin) * classes + rows.labels()[r].item<int64_t>())] = 1;
        }
        text += hexOf(xs.data(), xs.size() * 4) + "\t" + hexOf(ys.data(), ys.size() * 2) + "\t{" +
                std::to_string(count) + ",28,28,1}\t{" + std::to_string(count) + ",10}\t" + std::to_string(b) + "\n";
    }
    copyIn(db, "COPY " + packed + " FROM STDIN", text);
    db.query("CREATE TABLE " + packed + "_summary AS SELECT '" + rowsTable + "'::text AS source_table, '" + packed +
             "'::text AS output_table, ARRAY['label'] AS dependent_varname, ARRAY['x'] AS independent_varname, "
             "ARRAY['integer'] AS dependent_vartype, ARRAY[0,1,2,3,4,5,6,7,8,9] AS label_class_values, " +
             std::to_string(bufferSize) +
             " AS buffer_size, 255::real AS normalizing_const, ARRAY[10]::integer[] AS num_classes, "
             "'all_segments'::text AS distribution_rules");
}

} // namespace

// A packed table trains without unpacking in SQL, to the accuracy of its rows read one a row.
TEST_F(Madlib, APackedTableTrainsAsItsRowsDo) {
    const std::string rowsTable = "madlib_fashion_rows", packed = "madlib_fashion_packed";
    createMadlibTables(*db, rowsTable, packed, fashionRows(1200).train, 100);
    const std::string common = " --arch mlp --epochs 2 --batch-size 32 --seed 3 --threads 2 --no-project --json" + conn;
    // In id order, as the buffers hold them.
    auto rowsRun = runMppdl("train --data pg:" + rowsTable + " --id id --layout hwc" + common);
    ASSERT_EQ(rowsRun.code, 0) << rowsRun.out;
    auto packedRun = runMppdl("train --data pg:" + packed + common);
    ASSERT_EQ(packedRun.code, 0) << packedRun.out;
    EXPECT_TRUE(has(packedRun.out, "a MADlib packed table: 12 buffers of 1200 rows of 28x28x1, 10 classes from " +
                                       packed +
                                       "_summary.label_class_values, values multiplied back by its "
                                       "normalizing_const 255"))
        << packedRun.out;
    const auto a = finishedEvent(rowsRun.out), b = finishedEvent(packedRun.out);
    ASSERT_TRUE(a.contains("val_accuracy") && b.contains("val_accuracy")) << rowsRun.out << packedRun.out;
    EXPECT_NEAR(b["val_accuracy"].get<double>(), a["val_accuracy"].get<double>(), 0.01) << rowsRun.out << packedRun.out;
    EXPECT_GT(b["val_accuracy"].get<double>(), 0.6);

    // data show names the layout and the classes.
    auto r = runMppdl("data show pg:" + packed + conn);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "samples  1x28x28 float32 (kept height x width x channels: layout hwc")) << r.out;
    EXPECT_TRUE(has(r.out, "1,200 train")) << r.out;

    // Read as the database's segments, a shard holds whole buffers.
    r = runMppdl("train --data pg:" + packed + " --strategy model-averaging --segments 3 --distribute-by database" +
                 common);
    ASSERT_EQ(r.code, 0) << r.out;

    // Damaged: a buffer whose labels are not one-hot is named by its buffer_id.
    db->query("UPDATE " + packed + " SET label = overlay(label placing '\\x0100'::bytea from 3) WHERE buffer_id = 4");
    r = runMppdl("data show pg:" + packed + conn);
    EXPECT_NE(r.code, 0);
    EXPECT_TRUE(has(r.out, "buffer_id 4: row 1 of the buffer: the label is not one-hot")) << r.out;
    r = runMppdl("data show pg:" + rowsTable + " --format madlib-packed" + conn);
    EXPECT_NE(r.code, 0);
    EXPECT_TRUE(has(r.out, "is not a MADlib packed table (--format madlib-packed): there is no summary table"))
        << r.out;
    db->query("DROP TABLE " + packed + "_summary");
    db->query("DROP TABLE " + packed);
    db->query("DROP TABLE " + rowsTable);
}
