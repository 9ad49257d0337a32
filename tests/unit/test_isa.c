#define _POSIX_C_SOURCE 200809L /* setenv */
/* Instruction-set selection: the config field, the YOLOXLOSS_ISA
 * environment variable, and what a context reports it uses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "yoloxloss.h"

static void test_isa_names(void **state) {
    (void)state;
    assert_string_equal(yoloxloss_isa_name(YOLOXLOSS_ISA_AUTO), "auto");
    assert_string_equal(yoloxloss_isa_name(YOLOXLOSS_ISA_SCALAR), "scalar");
    assert_string_equal(yoloxloss_isa_name(YOLOXLOSS_ISA_AVX2), "avx2");
    assert_string_equal(yoloxloss_isa_name(YOLOXLOSS_ISA_AVX512), "avx512");
    assert_string_equal(yoloxloss_isa_name(YOLOXLOSS_ISA_NEON), "neon");
    assert_string_equal(yoloxloss_isa_name((yoloxloss_isa)42), "unknown");
    assert_true(yoloxloss_isa_supported(YOLOXLOSS_ISA_AUTO));
    assert_true(yoloxloss_isa_supported(YOLOXLOSS_ISA_SCALAR));
    assert_false(yoloxloss_isa_supported((yoloxloss_isa)42));
#if defined(__x86_64__)
    assert_false(yoloxloss_isa_supported(YOLOXLOSS_ISA_NEON));
#elif defined(__aarch64__)
    assert_true(yoloxloss_isa_supported(YOLOXLOSS_ISA_NEON));
    assert_false(yoloxloss_isa_supported(YOLOXLOSS_ISA_AVX2));
    assert_false(yoloxloss_isa_supported(YOLOXLOSS_ISA_AVX512));
#endif
}

/* Every supported ISA can be asked for and is what the context reports;
 * every unsupported one is refused with a message naming it. */
static void test_config_field(void **state) {
    (void)state;
    unsetenv("YOLOXLOSS_ISA");
    for (int i = YOLOXLOSS_ISA_SCALAR; i <= YOLOXLOSS_ISA_NEON; i++) {
        yoloxloss_config cfg;
        yoloxloss_config_defaults(&cfg);
        cfg.isa = (yoloxloss_isa)i;
        yoloxloss_context *ctx = NULL;
        char msg[256];
        yoloxloss_status st = yoloxloss_create(&cfg, &ctx);
        if (yoloxloss_isa_supported(cfg.isa)) {
            assert_int_equal(st, YOLOXLOSS_OK);
            assert_int_equal(yoloxloss_get_isa(ctx), i);
            yoloxloss_destroy(ctx);
        } else {
            assert_int_equal(st, YOLOXLOSS_ERR_INVALID_CONFIG);
            assert_null(ctx);
            assert_int_equal(yoloxloss_config_validate(&cfg, msg, sizeof msg), YOLOXLOSS_ERR_INVALID_CONFIG);
            assert_non_null(strstr(msg, yoloxloss_isa_name(cfg.isa)));
        }
    }
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.isa = (yoloxloss_isa)7;
    yoloxloss_context *ctx = NULL;
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_ERR_INVALID_CONFIG);
}

/* AUTO picks the best supported ISA: no supported one ranks above it. */
static void test_auto_is_best(void **state) {
    (void)state;
    unsetenv("YOLOXLOSS_ISA");
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    yoloxloss_context *ctx = NULL;
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
    yoloxloss_isa got = yoloxloss_get_isa(ctx);
    assert_int_not_equal(got, YOLOXLOSS_ISA_AUTO);
    assert_true(yoloxloss_isa_supported(got));
#if defined(__x86_64__)
    if (yoloxloss_isa_supported(YOLOXLOSS_ISA_AVX512)) assert_int_equal(got, YOLOXLOSS_ISA_AVX512);
    else if (yoloxloss_isa_supported(YOLOXLOSS_ISA_AVX2)) assert_int_equal(got, YOLOXLOSS_ISA_AVX2);
    else assert_int_equal(got, YOLOXLOSS_ISA_SCALAR);
#elif defined(__aarch64__)
    assert_int_equal(got, YOLOXLOSS_ISA_NEON);
#endif
    yoloxloss_destroy(ctx);
    assert_int_equal(yoloxloss_get_isa(NULL), YOLOXLOSS_ISA_AUTO);
}

static void test_environment_variable(void **state) {
    (void)state;
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    yoloxloss_context *ctx = NULL;
    char msg[256];

    setenv("YOLOXLOSS_ISA", "scalar", 1);
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_get_isa(ctx), YOLOXLOSS_ISA_SCALAR);
    yoloxloss_destroy(ctx);

    /* The config field wins over the environment. */
    if (yoloxloss_isa_supported(YOLOXLOSS_ISA_AVX2)) {
        cfg.isa = YOLOXLOSS_ISA_AVX2;
        assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_get_isa(ctx), YOLOXLOSS_ISA_AVX2);
        yoloxloss_destroy(ctx);
        cfg.isa = YOLOXLOSS_ISA_AUTO;
    }

    setenv("YOLOXLOSS_ISA", "sse9", 1);
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_ERR_INVALID_CONFIG);
    assert_int_equal(yoloxloss_config_validate(&cfg, msg, sizeof msg), YOLOXLOSS_ERR_INVALID_CONFIG);
    assert_non_null(strstr(msg, "sse9"));

#if defined(__x86_64__)
    setenv("YOLOXLOSS_ISA", "neon", 1);
    assert_int_equal(yoloxloss_config_validate(&cfg, msg, sizeof msg), YOLOXLOSS_ERR_INVALID_CONFIG);
    assert_non_null(strstr(msg, "neon"));
    assert_non_null(strstr(msg, "YOLOXLOSS_ISA"));
#endif

    setenv("YOLOXLOSS_ISA", "", 1);
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
    yoloxloss_destroy(ctx);
    unsetenv("YOLOXLOSS_ISA");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isa_names),
        cmocka_unit_test(test_config_field),
        cmocka_unit_test(test_auto_is_best),
        cmocka_unit_test(test_environment_variable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
