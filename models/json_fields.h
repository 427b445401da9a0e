// Typed reads of fields in the JSON files models come with (config.json,
// adapter_config.json): a missing, mistyped or out-of-range value is a
// BadInput error naming the file and the key, never a json exception or a
// silently truncated number. J: nlohmann::json or nlohmann::ordered_json.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/error.h"

namespace qtrain::json_fields {

inline bool present(const auto& j, const std::string& key) { return j.is_object() && j.contains(key) && !j[key].is_null(); }

// A whole number in [min, max]; `want` says what the key must be.
template <class J>
int64_t int_in(const J& v, const std::string& key, int64_t min, int64_t max, const std::string& path,
               const char* want = "an integer") {
  const bool ok = v.is_number_unsigned() ? v.template get<uint64_t>() <= uint64_t(max)
                  : v.is_number_integer() ? v.template get<int64_t>() >= min && v.template get<int64_t>() <= max
                                          : false;
  if (!ok || v.template get<int64_t>() < min)
    throw Error(path + ": field '" + key + "' must be " + want + " in [" + std::to_string(min) + ", " +
                std::to_string(max) + "], got " + v.dump().substr(0, 80));
  return v.template get<int64_t>();
}

template <class J>
std::string opt_string(const J& j, const std::string& key, const std::string& dflt, const std::string& path) {
  if (!present(j, key)) return dflt;
  if (!j[key].is_string()) throw Error(path + ": field '" + key + "' must be a string, got " + j[key].dump().substr(0, 80));
  return j[key].template get<std::string>();
}

template <class J>
bool opt_bool(const J& j, const std::string& key, bool dflt, const std::string& path) {
  if (!present(j, key)) return dflt;
  if (!j[key].is_boolean()) throw Error(path + ": field '" + key + "' must be true or false, got " + j[key].dump().substr(0, 80));
  return j[key].template get<bool>();
}

// A finite number in [min, max] (as a float).
template <class J>
float opt_float(const J& j, const std::string& key, float dflt, double min, double max, const std::string& path) {
  if (!present(j, key)) return dflt;
  const double v = j[key].is_number() ? j[key].template get<double>() : NAN;
  if (!(v >= min && v <= max))
    throw Error(path + ": field '" + key + "' must be a number in [" + std::to_string(min) + ", " + std::to_string(max) +
                "], got " + j[key].dump().substr(0, 80));
  return float(v);
}

}  // namespace qtrain::json_fields
