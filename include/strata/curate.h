// Curation: derive a clean branch from a dataset version by rules, never dropping anything.
//
//   auto rules = strata::LoadCurationRules("rules.yaml");
//   auto r = strata::Curate(lake, "fm@main", "fm@curated", *rules, {});
//   // fm@curated: the records that passed (labels remapped, text normalised), and every record
//   // that failed moved below `.quarantine/` with columns quarantine_rule / quarantine_reason.
//
// Rules (YAML; docs/CURATION.md has the reference and examples) check each record's metadata
// (required columns, types, value ranges, allowed labels after remapping and joining a labels
// CSV, a SQL filter expression), the content of text files (UTF-8, length, NFC and whitespace
// normalisation) and images (decoded in full; size and channel limits), and find exact
// duplicates (same content id) and near duplicates (MinHash over shingles for text, a DCT
// perceptual hash for images), keeping one per group by a stated rule. The first rule
// a record fails is the one reported.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/lake.h"

namespace strata {

struct CurationRules {
  std::string select;                        // SQL WHERE: the records curated (others pass as they are)
  std::vector<std::string> require;          // columns that must be non-null
  std::map<std::string, std::string> types;  // column -> int, float, number, bool, string
  struct Range {
    std::optional<double> min, max;
  };
  std::map<std::string, Range> ranges;
  std::string label_column = "label";
  std::vector<std::string> allowed_labels;   // empty: any
  std::map<std::string, std::string> remap;  // applied before the checks
  std::string labels_csv;                    // file,label joined by path then base name
  std::string filter;                        // SQL expression a record must satisfy

  struct Text {
    std::vector<std::string> files;  // glob patterns of the text files ("*.txt")
    bool utf8 = true;
    uint64_t min_bytes = 0, max_bytes = 0;  // 0: no limit
    bool nfc = false;                       // rewrite as Unicode NFC
    bool collapse_whitespace = false;       // runs of whitespace -> one space, trimmed
  };
  std::optional<Text> text;

  struct Images {
    std::vector<std::string> files = {"*.png", "*.jpg", "*.jpeg", "*.pgm", "*.ppm"};
    uint32_t min_width = 0, min_height = 0, max_width = 0, max_height = 0;  // 0: no limit
    std::vector<uint32_t> channels;  // allowed channel counts; empty: any
  };
  std::optional<Images> images;

  struct Duplicates {
    bool exact = false;
    std::string keep = "first";   // first, last (by path), largest, smallest
    double near_text = 0;         // MinHash Jaccard threshold (0: off), e.g. 0.8
    uint32_t shingle = 5;         // characters per shingle
    int near_image = -1;          // perceptual-hash Hamming distance (-1: off), e.g. 8
  };
  Duplicates duplicates;
};

// kInvalidArgument naming the key (and line) of anything malformed or unknown.
Result<CurationRules> LoadCurationRules(const std::string& path);
Result<CurationRules> ParseCurationRules(std::string_view yaml);

struct CurationFinding {
  std::string path, rule, reason;
};

struct CurationReport {
  std::string source, target;     // as given
  ObjectId source_commit;
  uint64_t records_before = 0;    // records considered (after `select`)
  uint64_t records_after = 0;     // passed
  uint64_t relabelled = 0, normalised = 0;
  std::map<std::string, uint64_t> per_rule;  // quarantined per rule
  std::vector<CurationFinding> quarantined;
  CommitResult commit;
  double seconds = 0;
};

struct CurateOptions {
  CommitOptions commit;
  bool progress = false;
};

// Derives branch `dst` (created at `src` if missing) from the version `src` names, in one commit.
Result<CurationReport> Curate(Lake* lake, std::string_view src, std::string_view dst, const CurationRules& rules,
                              const CurateOptions& options);

// The report as JSON text, as plain text, and as an HTML page with thumbnails of quarantined
// PGM/PPM/PNG/JPEG images (read from the target through `lake`).
std::string CurationReportJson(const CurationReport& report);
std::string CurationReportText(const CurationReport& report);
Result<std::string> CurationReportHtml(Lake* lake, const CurationReport& report);

}  // namespace strata
