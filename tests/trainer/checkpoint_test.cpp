// Checkpoints: round trip, crashes at every stage of the swap never losing
// the last good checkpoint, and corrupted/truncated files named on load.
#include "trainer/checkpoint.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/test_util.h"
#include "trainer/durable_io.h"

namespace qtrain {

namespace fs = std::filesystem;

namespace {

using testing::TempDir;

CheckpointState make_state(int64_t step) {
  CheckpointState s;
  s.step = step;
  s.optimizer_steps = step - 1;
  s.rng = {{"seed", 7}, {"counter", 1000 + step}};
  s.data_position = {{"epoch", 0}, {"offset", 64 * step}};
  s.config = {{"lr", 2e-4}, {"method", "lora"}};
  float f = float(step);
  s.params = {{"model.layers.0.q_proj.lora_A.weight", Tensor::from_vector({f, 2, 3, 4, 5, 6}, {2, 3})},
              {"model.layers.0.q_proj.lora_B.weight", Tensor::from_vector({-f, 0.5f}, {2, 1})}};
  s.optimizer = {{"model.layers.0.q_proj.lora_A.weight.exp_avg", Tensor::from_vector({0.1f * f, 0, 0, 0, 0, 1}, {2, 3})}};
  return s;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected a qtrain::Error";
  return "";
}

}  // namespace

TEST(Checkpoint, RoundTrip) {
  TempDir t;
  std::string dir = (t.path / "checkpoint").string();
  save_checkpoint(dir, make_state(3));
  CheckpointState s = load_checkpoint(dir);
  EXPECT_EQ(s.source, dir);
  EXPECT_EQ(s.step, 3);
  EXPECT_EQ(s.optimizer_steps, 2);
  EXPECT_EQ(s.rng["counter"], 1003);
  EXPECT_EQ(s.data_position["offset"], 192);
  EXPECT_EQ(s.config["method"], "lora");
  ASSERT_EQ(s.params.size(), 2u);
  ParamSet ps;
  ps.declare("model.layers.0.q_proj.lora_A.weight", {2, 3}, true, 0);
  ps.declare("model.layers.0.q_proj.lora_B.weight", {2, 1}, true, 0);
  ps.allocate(Device::CPU);
  restore_params(ps, s.params, dir);
  EXPECT_EQ(ps[0].value.to_vector(), (std::vector<float>{3, 2, 3, 4, 5, 6}));
  EXPECT_EQ(ps[1].value.to_vector(), (std::vector<float>{-3, 0.5f}));
  EXPECT_EQ(s.optimizer[0].second.to_vector()[0], 0.3f);
  // Overwriting leaves exactly one checkpoint and no tmp/old directories.
  save_checkpoint(dir, make_state(4));
  EXPECT_EQ(load_checkpoint(dir).step, 4);
  EXPECT_EQ(std::distance(fs::directory_iterator(t.path), fs::directory_iterator()), 1);
}

TEST(Checkpoint, TornWriteNeverDamagesTheLastGoodCheckpoint) {
  TempDir t;
  std::string dir = (t.path / "checkpoint").string();
  save_checkpoint(dir, make_state(1));
  // Crash while writing step 2: a dead process's half-written tmp directory.
  std::string torn = dir + ".tmp-999999999";
  fs::create_directories(torn);
  fs::copy_file(dir + "/params.safetensors", torn + "/params.safetensors");
  { std::ofstream(torn + "/optimizer.safetensors") << "half"; }
  EXPECT_EQ(load_checkpoint(dir).step, 1);
  // Crash between the two renames of the swap: only DIR.old is there.
  fs::rename(dir, dir + ".old");
  CheckpointState s = load_checkpoint(dir);
  EXPECT_EQ(s.step, 1);
  EXPECT_EQ(s.source, dir + ".old");
  // The next save completes normally and cleans up the torn pieces.
  save_checkpoint(dir, make_state(2));
  EXPECT_EQ(load_checkpoint(dir).step, 2);
  EXPECT_FALSE(fs::exists(torn));
  EXPECT_FALSE(fs::exists(dir + ".old"));
  // Crash after the swap, before removing DIR.old: DIR (the newer one) wins.
  fs::create_directories(dir + ".old");
  fs::copy(dir, dir + ".old", fs::copy_options::recursive);
  save_checkpoint(dir, make_state(5));
  EXPECT_EQ(load_checkpoint(dir).step, 5);
}

TEST(Checkpoint, CorruptedFileIsNamed) {
  TempDir t;
  std::string dir = (t.path / "checkpoint").string();
  save_checkpoint(dir, make_state(1));
  std::string params = dir + "/params.safetensors";
  {
    std::fstream f(params, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x7f');
  }
  std::string msg = error_of([&] { load_checkpoint(dir); });
  EXPECT_NE(msg.find("params.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("checksum"), std::string::npos) << msg;
}

TEST(Checkpoint, TruncatedAndMissingFilesAreNamed) {
  TempDir t;
  std::string dir = (t.path / "checkpoint").string();
  save_checkpoint(dir, make_state(1));
  fs::resize_file(dir + "/optimizer.safetensors", 20);
  std::string msg = error_of([&] { load_checkpoint(dir); });
  EXPECT_NE(msg.find("optimizer.safetensors: size 20 bytes"), std::string::npos) << msg;
  save_checkpoint(dir, make_state(2));
  fs::remove(dir + "/state.json");
  msg = error_of([&] { load_checkpoint(dir); });
  EXPECT_NE(msg.find("state.json: missing"), std::string::npos) << msg;
  msg = error_of([&] { load_checkpoint((t.path / "nothing").string()); });
  EXPECT_NE(msg.find("no complete checkpoint"), std::string::npos) << msg;
}

TEST(Checkpoint, RestoreRejectsShapeMismatch) {
  ParamSet ps;
  ps.declare("w", {3}, true, 0);
  ps.allocate(Device::CPU);
  std::string msg = error_of([&] { restore_params(ps, {{"w", Tensor::zeros({4}, DType::F32)}}, "ck/params.safetensors"); });
  EXPECT_NE(msg.find("ck/params.safetensors: tensor 'w' has shape [4]"), std::string::npos) << msg;
  msg = error_of([&] { restore_params(ps, {}, "ck/params.safetensors"); });
  EXPECT_NE(msg.find("missing tensor 'w'"), std::string::npos) << msg;
}

// A resume whose model has fewer trainable tensors than the checkpoint (--resume DIR --target q_proj
// on an all-linear run) used to drop the others' training without a word, writing a smaller adapter.
TEST(Checkpoint, RestoreRejectsTensorsTheModelLacks) {
  ParamSet ps;
  ps.declare("q.lora_A", {3}, true, 0);
  ps.allocate(Device::CPU);
  std::string msg = error_of([&] {
    restore_params(ps,
                   {{"q.lora_A", Tensor::zeros({3}, DType::F32)}, {"k.lora_A", Tensor::zeros({3}, DType::F32)},
                    {"v.lora_A", Tensor::zeros({3}, DType::F32)}},
                   "ck");
  });
  EXPECT_NE(msg.find("ck: holds 2 trained tensors this model has no parameter for ('k.lora_A', 'v.lora_A')"),
            std::string::npos)
      << msg;
}

TEST(DurableIo, DigestIsZlibCrc32) {
  TempDir t;
  std::string p = (t.path / "f.txt").string();
  write_file_synced(p, "123456789");
  FileDigest d = digest_file(p);
  EXPECT_EQ(d.bytes, 9u);
  EXPECT_EQ(d.crc32, 0xCBF43926u);  // the standard CRC-32 check value
}

}  // namespace qtrain

namespace qtrain {

TEST(Checkpoint, KeepCheckpointsKeepsTheNewestN) {
  TempDir t;
  std::string dir = (t.path / "checkpoint").string();
  for (int64_t s = 1; s <= 5; ++s) save_checkpoint(dir, make_state(s), /*keep=*/3);
  EXPECT_EQ(load_checkpoint(dir).step, 5);
  EXPECT_EQ(load_checkpoint(dir + "-step4").step, 4);
  EXPECT_EQ(load_checkpoint(dir + "-step3").step, 3);
  EXPECT_FALSE(fs::exists(dir + "-step2"));
  EXPECT_FALSE(fs::exists(dir + "-step1"));
  // keep 1 (the default): only the newest, nothing beside it.
  save_checkpoint(dir, make_state(6), 1);
  EXPECT_EQ(load_checkpoint(dir).step, 6);
  EXPECT_FALSE(fs::exists(dir + ".old"));
}

TEST(Checkpoint, FailedWriteRemovesItsPartialDirectoryAndKeepsTheLastGood) {
  TempDir t;
  std::string dir = (t.path / "checkpoint").string();
  save_checkpoint(dir, make_state(1));
  // A write that fails halfway (as on a full disk) through the same path as a checkpoint's.
  EXPECT_THROW(write_dir_atomically(dir,
                                    [](const std::string& tmp) {
                                      write_file_synced(tmp + "/params.safetensors", std::string(1000, 'x'));
                                      throw Error("disk full", ErrorKind::Runtime);
                                    }),
               Error);
  for (const auto& e : fs::directory_iterator(t.path))
    EXPECT_EQ(e.path().filename().string().find("checkpoint.tmp-"), std::string::npos) << e.path();
  EXPECT_EQ(load_checkpoint(dir).step, 1);
}

TEST(DurableIo, WriteDirAtomicallyReplacesWholeAndRetiresTheOld) {
  TempDir t;
  std::string dir = (t.path / "adapter").string();
  write_dir_atomically(dir, [](const std::string& tmp) { write_file_synced(tmp + "/a", "one"); });
  EXPECT_EQ(read_file(dir + "/a"), "one");
  std::string retired;
  write_dir_atomically(
      dir, [](const std::string& tmp) { write_file_synced(tmp + "/b", "two"); },
      [&](const std::string& old) {
        retired = read_file(old + "/a");
        fs::remove_all(old);
      });
  EXPECT_EQ(retired, "one");
  EXPECT_FALSE(fs::exists(dir + "/a"));
  EXPECT_EQ(read_file(dir + "/b"), "two");
}

}  // namespace qtrain
