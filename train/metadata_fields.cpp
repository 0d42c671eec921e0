#include "train/metadata_fields.h"

#include <cmath>

#include "engine/error.h"

namespace pmpl::metadata {
namespace {

const nlohmann::json& field(const nlohmann::json& j, const char* key, const std::string& where) {
  PMPL_CHECK(j.is_object() && j.contains(key), "{}: the metadata has no '{}': it was not written by pmpl's trainer",
             where, key);
  return j[key];
}

std::string shown(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 40) + "..." : s;
}

}  // namespace

int64_t integer(const nlohmann::json& j, const char* key, int64_t min, int64_t max, const std::string& where) {
  const nlohmann::json& v = field(j, key, where);
  // is_number_integer covers both of nlohmann's integer kinds; an unsigned one above int64's
  // range is refused before the conversion.
  const bool fits = v.is_number_integer() && (!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(max));
  PMPL_CHECK(fits && v.get<int64_t>() >= min && v.get<int64_t>() <= max,
             "{}: '{}' must be an integer from {} to {}, got {}", where, key, min, max, shown(v));
  return v.get<int64_t>();
}

uint64_t unsigned_integer(const nlohmann::json& j, const char* key, const std::string& where) {
  const nlohmann::json& v = field(j, key, where);
  PMPL_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0),
             "{}: '{}' must be a non-negative integer, got {}", where, key, shown(v));
  return v.get<uint64_t>();
}

double number(const nlohmann::json& j, const char* key, double min, double max, const std::string& where) {
  const nlohmann::json& v = field(j, key, where);
  PMPL_CHECK(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= min && v.get<double>() <= max,
             "{}: '{}' must be a number from {} to {}, got {}", where, key, min, max, shown(v));
  return v.get<double>();
}

bool boolean(const nlohmann::json& j, const char* key, const std::string& where) {
  const nlohmann::json& v = field(j, key, where);
  PMPL_CHECK(v.is_boolean(), "{}: '{}' must be true or false, got {}", where, key, shown(v));
  return v.get<bool>();
}

std::string text(const nlohmann::json& j, const char* key, const std::string& where) {
  const nlohmann::json& v = field(j, key, where);
  PMPL_CHECK(v.is_string(), "{}: '{}' must be a string, got {}", where, key, shown(v));
  return v.get<std::string>();
}

int64_t integer_or(const nlohmann::json& j, const char* key, int64_t min, int64_t max, int64_t fallback,
                   const std::string& where) {
  return j.is_object() && j.contains(key) ? integer(j, key, min, max, where) : fallback;
}

double number_or(const nlohmann::json& j, const char* key, double min, double max, double fallback,
                 const std::string& where) {
  return j.is_object() && j.contains(key) ? number(j, key, min, max, where) : fallback;
}

bool boolean_or(const nlohmann::json& j, const char* key, bool fallback, const std::string& where) {
  return j.is_object() && j.contains(key) ? boolean(j, key, where) : fallback;
}

}  // namespace pmpl::metadata
