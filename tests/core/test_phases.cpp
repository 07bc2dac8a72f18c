// Kernel phases (core/phases.h): nothing is kept while disabled; enabled, each name's seconds add
// up over calls and threads in the order the names first appeared, and take() clears them.
#include <doctest/doctest.h>
#include <omp.h>

#include <thread>

#include "core/phases.h"

using namespace dsc;

TEST_CASE("phases: disabled timers keep nothing; enabled ones add up per name over threads") {
  phases::set_enabled(false);
  phases::take();
  {
    phases::Timer t("a");
    t.next("b");
  }
  phases::add("c", 1.0);
  CHECK(phases::take().empty());

  phases::set_enabled(true);
  {
    phases::Timer t("first");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    t.next("second");
  }
  // Four threads (as many as the runtime gives) add known amounts to two names, concurrently.
  int threads = 0;
#pragma omp parallel num_threads(4)
  {
#pragma omp single
    threads = omp_get_num_threads();
    for (int i = 0; i < 1000; ++i) {
      phases::add("second", 0.001);
      phases::add("third", 0.5);
    }
  }
  const auto got = phases::take();
  phases::set_enabled(false);
  REQUIRE(got.size() == 3);
  CHECK(got[0].first == "first");
  CHECK(got[0].second >= 0.019);
  CHECK(got[0].second < 5.0);
  CHECK(got[1].first == "second");
  CHECK(got[1].second >= 0.001 * 1000 * threads);
  CHECK(got[1].second < 0.001 * 1000 * threads + 1.0);  // plus the timer's sliver
  CHECK(got[2].first == "third");
  CHECK(got[2].second == doctest::Approx(0.5 * 1000 * threads));
  CHECK(phases::take().empty());  // cleared
}
