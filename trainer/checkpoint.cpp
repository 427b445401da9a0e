#include "trainer/checkpoint.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <map>
#include <spdlog/spdlog.h>

#include "models/safetensors.h"
#include "trainer/durable_io.h"

namespace qtrain {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "qtrain-checkpoint";
constexpr int kVersion = 1;
const char* const kFiles[] = {"params.safetensors", "optimizer.safetensors", "state.json"};

std::string strip_slash(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

// Leftover DIR.tmp-<pid> directories of processes that no longer run are
// torn writes: remove them. A live writer's directory is left alone.
void remove_stale_tmp_dirs(const std::string& dir) {
  fs::path base(dir);
  fs::path parent = base.parent_path().empty() ? fs::path(".") : base.parent_path();
  std::string prefix = base.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    bool alive = pid > 0 && pid != long(getpid()) && (::kill(pid_t(pid), 0) == 0 || errno == EPERM);
    if (alive) continue;
    spdlog::warn("checkpoint: removing incomplete checkpoint {}", entry.path().string());
    fs::remove_all(entry.path(), ec);
  }
}

void rename_or_throw(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) throw Error("checkpoint: cannot rename " + from.string() + " to " + to.string() + " (" + ec.message() + ")",
                      ErrorKind::Runtime);
}

nlohmann::json parse_json_file(const std::string& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": invalid JSON (" + e.what() + ")");
  }
}

template <class T>
T get_field(const nlohmann::json& j, const char* field, const std::string& path) {
  if (!j.is_object() || !j.contains(field)) throw Error(path + ": missing field '" + field + "'");
  try {
    return j.at(field).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": field '" + field + "' has the wrong type");
  }
}

NamedTensors load_all(const std::string& path) {
  SafetensorsFile f(path);
  NamedTensors out;
  for (const auto& e : f.entries()) out.emplace_back(e.name, f.load_f32(e.name));
  return out;
}

}  // namespace

NamedTensors param_tensors(const ParamSet& params) {
  NamedTensors out;
  for (const Param& p : params.params()) out.emplace_back(p.name, p.value);
  return out;
}

void save_checkpoint(const std::string& dir_in, const CheckpointState& s) {
  const std::string dir = strip_slash(dir_in);
  remove_stale_tmp_dirs(dir);
  const fs::path tmp = dir + ".tmp-" + std::to_string(getpid());
  const fs::path old = dir + ".old";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) throw Error(tmp.string() + ": cannot create directory (" + ec.message() + ")", ErrorKind::Runtime);

  save_safetensors((tmp / "params.safetensors").string(), s.params, {{"format", kFormat}});
  save_safetensors((tmp / "optimizer.safetensors").string(), s.optimizer, {{"format", kFormat}});
  nlohmann::json state = {{"step", s.step},         {"optimizer_steps", s.optimizer_steps},
                          {"rng", s.rng},           {"data_position", s.data_position},
                          {"config", s.config}};
  write_file_synced((tmp / "state.json").string(), state.dump(2) + "\n");

  nlohmann::json files = nlohmann::json::object();
  for (const char* name : kFiles) {
    FileDigest d = digest_file((tmp / name).string());
    files[name] = {{"bytes", d.bytes}, {"crc32", d.crc32}};
  }
  nlohmann::json manifest = {{"format", kFormat}, {"version", kVersion}, {"step", s.step}, {"files", files}};
  write_file_synced((tmp / "manifest.json").string(), manifest.dump(2) + "\n");
  fsync_dir(tmp.string());

  // The swap. Between the two renames only DIR.old is complete; load knows.
  const fs::path parent = fs::path(dir).parent_path().empty() ? fs::path(".") : fs::path(dir).parent_path();
  bool had_previous = fs::exists(dir);
  if (had_previous) {
    fs::remove_all(old, ec);  // a DIR.old next to a DIR is stale: DIR is newer
    rename_or_throw(dir, old);
    fsync_dir(parent.string());
  }
  rename_or_throw(tmp, dir);
  fsync_dir(parent.string());
  fs::remove_all(old, ec);  // also the DIR.old a crash mid-swap left behind
}

std::string find_checkpoint(const std::string& dir_in) {
  const std::string dir = strip_slash(dir_in);
  if (fs::exists(fs::path(dir) / "manifest.json")) return dir;
  if (fs::exists(fs::path(dir + ".old") / "manifest.json")) return dir + ".old";
  return "";
}

CheckpointState load_checkpoint(const std::string& dir_in) {
  const std::string dir = strip_slash(dir_in);
  std::string src = find_checkpoint(dir);
  if (src.empty()) throw Error(dir + ": no complete checkpoint here (no " + dir + "/manifest.json)");
  if (src != dir) spdlog::warn("checkpoint: {} is incomplete, resuming from the previous one in {}", dir, src);

  const std::string mpath = src + "/manifest.json";
  nlohmann::json manifest = parse_json_file(mpath);
  if (get_field<std::string>(manifest, "format", mpath) != kFormat)
    throw Error(mpath + ": field 'format' is not '" + kFormat + "'");
  int version = get_field<int>(manifest, "version", mpath);
  if (version != kVersion) throw Error(mpath + ": unsupported checkpoint version " + std::to_string(version));
  auto files = get_field<nlohmann::json>(manifest, "files", mpath);
  for (const char* name : kFiles) {
    const std::string path = src + "/" + name;
    if (!files.contains(name)) throw Error(mpath + ": no entry for " + name);
    auto want_bytes = get_field<uint64_t>(files[name], "bytes", mpath);
    auto want_crc = get_field<uint32_t>(files[name], "crc32", mpath);
    if (!fs::exists(path)) throw Error(path + ": missing (listed in " + mpath + ")");
    FileDigest d = digest_file(path);
    if (d.bytes != want_bytes)
      throw Error(path + ": size " + std::to_string(d.bytes) + " bytes, manifest says " + std::to_string(want_bytes) +
                  " (truncated or overwritten)");
    if (d.crc32 != want_crc) throw Error(path + ": checksum mismatch with " + mpath + " (corrupted)");
  }

  CheckpointState s;
  s.source = src;
  const std::string spath = src + "/state.json";
  nlohmann::json state = parse_json_file(spath);
  s.step = get_field<int64_t>(state, "step", spath);
  s.optimizer_steps = get_field<int64_t>(state, "optimizer_steps", spath);
  s.rng = get_field<nlohmann::json>(state, "rng", spath);
  s.data_position = get_field<nlohmann::json>(state, "data_position", spath);
  s.config = get_field<nlohmann::json>(state, "config", spath);
  s.params = load_all(src + "/params.safetensors");
  s.optimizer = load_all(src + "/optimizer.safetensors");
  return s;
}

void restore_params(ParamSet& params, const NamedTensors& tensors, const std::string& source) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, t] : tensors) by_name[name] = &t;
  for (Param& p : params.params()) {
    auto it = by_name.find(p.name);
    if (it == by_name.end()) throw Error(source + ": missing tensor '" + p.name + "'");
    if (it->second->shape() != p.shape)
      throw Error(source + ": tensor '" + p.name + "' has shape " + shape_str(it->second->shape()) +
                  ", the model expects " + shape_str(p.shape));
    p.value.copy_from(*it->second);
  }
}

}  // namespace qtrain
