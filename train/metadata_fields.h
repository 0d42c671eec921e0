// Typed, range-checked reads of a checkpoint's JSON metadata (pmpl.trainer, pmpl.model): a field
// that is missing, of another type or out of range is one clear pmpl::Error naming it, never a JSON
// library exception or a float-to-integer conversion out of range (Fuzz.CheckpointMetadata).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace pmpl::metadata {

// `where` names the file and the metadata key in the error, e.g. "run/checkpoint-last (pmpl.trainer)".
int64_t integer(const nlohmann::json& j, const char* key, int64_t min, int64_t max, const std::string& where);
uint64_t unsigned_integer(const nlohmann::json& j, const char* key, const std::string& where);
double number(const nlohmann::json& j, const char* key, double min, double max, const std::string& where);
bool boolean(const nlohmann::json& j, const char* key, const std::string& where);
std::string text(const nlohmann::json& j, const char* key, const std::string& where);

// The same, with `fallback` when the key is absent (fields that older checkpoints lack).
int64_t integer_or(const nlohmann::json& j, const char* key, int64_t min, int64_t max, int64_t fallback,
                   const std::string& where);
double number_or(const nlohmann::json& j, const char* key, double min, double max, double fallback,
                 const std::string& where);
bool boolean_or(const nlohmann::json& j, const char* key, bool fallback, const std::string& where);

}  // namespace pmpl::metadata
