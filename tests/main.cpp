// The doctest runner shared by every test executable. Test cases decorated with
// doctest::skip(cond) (the GPU tests where no GPU is usable) are still listed, so that ctest
// registers every one of them, and a run of exactly one such test case exits with 77, which ctest
// (SKIP_RETURN_CODE, tests/CMakeLists.txt) reports as skipped rather than passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>
#include <string>

namespace {

std::string g_only_case;  // the --test-case=NAME ctest passes, unescaped
bool g_only_case_skipped = false;

// Notes whether the one requested test case was skipped by its decorator.
struct SkipListener : doctest::IReporter {
  explicit SkipListener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData& tc) override {
    if (tc.m_skip && !g_only_case.empty() && g_only_case == tc.m_name) g_only_case_skipped = true;
  }
};
REGISTER_LISTENER("dsc_skip", 1, SkipListener);

std::string unescape_commas(const char* s) {
  std::string out;
  for (; *s; ++s) {
    if (s[0] == '\\' && s[1] == ',') continue;
    out += *s;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  int filters = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--list-test-cases") == 0 || std::strcmp(argv[i], "-ltc") == 0)
      context.setOption("no-skip", true);  // list the skipped ones too
    if (std::strncmp(argv[i], "--test-case=", 12) == 0 || std::strncmp(argv[i], "-tc=", 4) == 0) {
      ++filters;
      g_only_case = unescape_commas(std::strchr(argv[i], '=') + 1);
    }
  }
  if (filters != 1) g_only_case.clear();
  const int rc = context.run();
  if (context.shouldExit()) return rc;
  return rc == 0 && g_only_case_skipped ? 77 : rc;
}
