#include "trainer/checkpoint.h"

#include <cstdlib>
#include <limits>
#include <type_traits>
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

// The checkpoint-step<N> directories kept beside DIR, by step.
std::map<int64_t, fs::path> kept_checkpoints(const std::string& dir) {
  fs::path base(dir);
  fs::path parent = base.parent_path().empty() ? fs::path(".") : base.parent_path();
  const std::string prefix = base.filename().string() + "-step";
  std::map<int64_t, fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    char* end = nullptr;
    long long step = std::strtoll(name.c_str() + prefix.size(), &end, 10);
    if (end && *end == '\0' && end != name.c_str() + prefix.size()) out[step] = e.path();
  }
  return out;
}

nlohmann::json parse_json(const std::string& text, const std::string& path) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": invalid JSON (" + e.what() + ")");
  }
}

template <class T>
T get_field(const nlohmann::json& j, const char* field, const std::string& path) {
  if (!j.is_object() || !j.contains(field)) throw Error(path + ": missing field '" + field + "'");
  const nlohmann::json& v = j.at(field);
  if constexpr (std::is_integral_v<T>) {
    // get<T>() would convert 1e43 or -1 silently (or with undefined behaviour): whole numbers in range only.
    using L = std::numeric_limits<T>;
    const bool ok = v.is_number_unsigned() ? v.get<uint64_t>() <= uint64_t(L::max())
                    : v.is_number_integer()
                        ? v.get<int64_t>() >= int64_t(L::min()) && (v.get<int64_t>() < 0 || uint64_t(v.get<int64_t>()) <= uint64_t(L::max()))
                        : false;
    if (!ok)
      throw Error(path + ": field '" + field + "' must be a whole number in [" + std::to_string(L::min()) + ", " +
                  std::to_string(L::max()) + "], got " + v.dump().substr(0, 80));
    return v.get<T>();
  } else {
    try {
      return v.get<T>();
    } catch (const nlohmann::json::exception&) {
      throw Error(path + ": field '" + field + "' has the wrong type");
    }
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

void save_checkpoint(const std::string& dir_in, const CheckpointState& s, int keep) {
  const std::string dir = strip_slash(dir_in);
  auto fill = [&](const std::string& tmp_dir) {
    const fs::path tmp(tmp_dir);
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
  };
  // --keep-checkpoints N: the replaced checkpoint becomes DIR-step<its step>,
  // and only the newest N-1 of those stay.
  auto retire = [&](const std::string& old) {
    std::error_code ec;
    if (keep <= 1) {
      fs::remove_all(old, ec);
      return;
    }
    int64_t old_step = -1;
    try {
      const std::string mpath = old + "/manifest.json";
      old_step = get_field<int64_t>(parse_json(read_file(mpath), mpath), "step", mpath);
    } catch (const Error&) {
    }
    if (old_step >= 0 && old_step != s.step)
      fs::rename(old, dir + "-step" + std::to_string(old_step), ec);
    if (old_step < 0 || old_step == s.step || ec) fs::remove_all(old, ec);
    auto kept = kept_checkpoints(dir);
    while (kept.size() > size_t(keep - 1)) {
      spdlog::info("checkpoint: removing {} (--keep-checkpoints {})", kept.begin()->second.string(), keep);
      fs::remove_all(kept.begin()->second, ec);
      kept.erase(kept.begin());
    }
  };
  write_dir_atomically(dir, fill, retire);
}

std::string find_checkpoint(const std::string& dir_in) {
  const std::string dir = strip_slash(dir_in);
  if (fs::exists(fs::path(dir) / "manifest.json")) return dir;
  if (fs::exists(fs::path(dir + ".old") / "manifest.json")) return dir + ".old";
  return "";
}

std::map<std::string, ManifestEntry> parse_checkpoint_manifest(const std::string& text, const std::string& mpath) {
  nlohmann::json manifest = parse_json(text, mpath);
  if (get_field<std::string>(manifest, "format", mpath) != kFormat)
    throw Error(mpath + ": field 'format' is not '" + kFormat + "'");
  int version = get_field<int>(manifest, "version", mpath);
  if (version != kVersion) throw Error(mpath + ": unsupported checkpoint version " + std::to_string(version));
  auto files = get_field<nlohmann::json>(manifest, "files", mpath);
  std::map<std::string, ManifestEntry> out;
  for (const char* name : kFiles) {
    if (!files.contains(name)) throw Error(mpath + ": no entry for " + name);
    out[name] = {get_field<uint64_t>(files[name], "bytes", mpath), get_field<uint32_t>(files[name], "crc32", mpath)};
  }
  return out;
}

void parse_checkpoint_state(const std::string& text, const std::string& spath, CheckpointState& s) {
  nlohmann::json state = parse_json(text, spath);
  s.step = get_field<int64_t>(state, "step", spath);
  s.optimizer_steps = get_field<int64_t>(state, "optimizer_steps", spath);
  if (s.step < 0 || s.optimizer_steps < 0) throw Error(spath + ": field 'step' or 'optimizer_steps' is negative");
  s.rng = get_field<nlohmann::json>(state, "rng", spath);
  s.data_position = get_field<nlohmann::json>(state, "data_position", spath);
  s.config = get_field<nlohmann::json>(state, "config", spath);
}

CheckpointState load_checkpoint(const std::string& dir_in) {
  const std::string dir = strip_slash(dir_in);
  std::string src = find_checkpoint(dir);
  if (src.empty()) throw Error(dir + ": no complete checkpoint here (no " + dir + "/manifest.json)");
  if (src != dir) spdlog::warn("checkpoint: {} is incomplete, resuming from the previous one in {}", dir, src);

  const std::string mpath = src + "/manifest.json";
  const auto manifest = parse_checkpoint_manifest(read_file(mpath), mpath);
  for (const char* name : kFiles) {
    const std::string path = src + "/" + name;
    const auto [want_bytes, want_crc] = manifest.at(name);
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
  parse_checkpoint_state(read_file(spath), spath, s);
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
    by_name.erase(it);
  }
  // What is left was trained and would be dropped: a resume with another --target, --method or
  // --adapter-type than the run had (the names say which modules).
  if (!by_name.empty()) {
    std::string names;
    int shown = 0;
    for (const auto& [name, t] : by_name)
      if (shown++ < 3) names += (names.empty() ? "'" : ", '") + name + "'";
    if (by_name.size() > 3) names += ", ...";
    throw Error(source + ": holds " + std::to_string(by_name.size()) +
                " trained tensors this model has no parameter for (" + names +
                "); resuming would drop their training. Resume with the run's own --target, --method and "
                "--adapter-type");
  }
}

}  // namespace qtrain
