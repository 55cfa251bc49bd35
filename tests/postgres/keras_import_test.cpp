// MADlib's model architecture table as mppdl reads it: `mppdl arch import --from-table`.

#include "pg_test_db.h"

#include "support/run_cli.h"
#include "support/scratch_dir.h"

#include <gtest/gtest.h>

namespace {

class ArchImport : public ScratchDirTest {};

// A Keras Sequential model as MADlib's load_keras_model() stores it (model_arch is JSON).
const char* const kKerasMlp = R"({"class_name": "Sequential", "config": {"name": "madlib_mlp", "layers": [
 {"class_name": "Flatten", "config": {"name": "flatten", "batch_input_shape": [null, 28, 28, 1]}},
 {"class_name": "Dense", "config": {"name": "hidden", "units": 64, "activation": "relu", "use_bias": true}},
 {"class_name": "Dense", "config": {"name": "out", "units": 10, "activation": "softmax", "use_bias": true}}]},
 "keras_version": "2.11.0", "backend": "tensorflow"})";

} // namespace

TEST_F(ArchImport, FromAMadlibModelArchitectureTable) {
    MPPDL_REQUIRE_POSTGRES();
    mppdl::data::PgConnection db(testConnection(), "the test database");
    db.query("DROP TABLE IF EXISTS model_arch_library");
    db.query("CREATE TABLE model_arch_library (model_id serial, model_arch json, model_weights bytea, name text, "
             "description text, __internal_madlib_id__ text)");
    db.query("INSERT INTO model_arch_library (model_arch, name) VALUES ($1::json, 'mlp')", {kKerasMlp});
    const std::string conn = "--conn \"" + testConnection() + "\"";
    auto r = runMppdl("arch import --from-table model_arch_library --id 1 " + conn + " --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("imported mlp version 1"), std::string::npos) << r.out; // MADlib's name
    EXPECT_NE(r.out.find("50,890 parameters"), std::string::npos) << r.out;      // 784*64+64 + 64*10+10
    r = runMppdl("arch list --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("mlp"), std::string::npos) << r.out;
    // Exported back, it is the Keras model MADlib stored.
    r = runMppdl("arch export mlp --format keras-json --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("\"units\":64"), std::string::npos) << r.out;

    r = runMppdl("arch import --from-table model_arch_library --id 9 " + conn + " --project p.mppdl");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("no model_id 9"), std::string::npos) << r.out;
}
