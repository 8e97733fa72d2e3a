// l2norm(x DOUBLE) -> DOUBLE: the Euclidean norm sqrt(sum of x*x) of a group's non-NULL
// values; NULL for a group without any. A Laminar aggregate written in C against
// wit/laminar-udaf.wit, with the bindings `wit-bindgen c` generates (udaf.h, udaf.c).
//
// Two rules of those bindings every C author must know:
//  - Arguments are owned by the callee: free every list and string the host passes in
//    (the *_free helpers of udaf.h), also on the error paths.
//  - Returned lists and strings (results, error texts, the name in `describe`) must be
//    allocated with malloc: the generated post-return functions free() them after the
//    host has copied them out. Never return a pointer to static or accumulator memory.
//
// State of a group: 16 bytes, the sum of squares (f64) and the count of values (u64),
// both little-endian (WebAssembly is little-endian, so memcpy writes them so).

#include <stdlib.h>
#include <string.h>

#include "udaf.h"

// Per-group sums of squares and counts, indexed by group id.
struct exports_laminar_udaf_aggregate_accumulator_t {
    double *squares;
    uint64_t *counts;
    size_t groups;
};

typedef struct exports_laminar_udaf_aggregate_accumulator_t accumulator_t;

enum { STATE_BYTES = 16 };

// Sets `err` to a malloc'd copy of `message` and returns false (the error result).
static bool fail(udaf_string_t *err, const char *message) {
    udaf_string_dup(err, message);
    return false;
}

// Grows the accumulator to `total` groups, new ones empty. False when out of memory.
static bool grow(accumulator_t *acc, uint32_t total) {
    if (total <= acc->groups) {
        return true;
    }
    double *squares = realloc(acc->squares, total * sizeof(double));
    if (squares == NULL) {
        return false;
    }
    acc->squares = squares;
    uint64_t *counts = realloc(acc->counts, total * sizeof(uint64_t));
    if (counts == NULL) {
        return false;
    }
    acc->counts = counts;
    for (size_t g = acc->groups; g < total; g++) {
        acc->squares[g] = 0.0;
        acc->counts[g] = 0;
    }
    acc->groups = total;
    return true;
}

void exports_laminar_udaf_aggregate_describe(exports_laminar_udaf_aggregate_signature_t *ret) {
    udaf_string_dup(&ret->name, "l2norm");
    ret->args.len = 1;
    ret->args.ptr = malloc(sizeof(exports_laminar_udaf_aggregate_data_type_t));
    if (ret->args.ptr == NULL) {
        abort();
    }
    ret->args.ptr[0] = EXPORTS_LAMINAR_UDAF_AGGREGATE_DATA_TYPE_FLOAT64;
    ret->returns = EXPORTS_LAMINAR_UDAF_AGGREGATE_DATA_TYPE_FLOAT64;
    ret->state_version = 1;
}

exports_laminar_udaf_aggregate_own_accumulator_t exports_laminar_udaf_aggregate_constructor_accumulator(void) {
    accumulator_t *acc = calloc(1, sizeof(accumulator_t));
    if (acc == NULL) {
        abort();
    }
    return exports_laminar_udaf_aggregate_accumulator_new(acc);
}

void exports_laminar_udaf_aggregate_accumulator_destructor(accumulator_t *acc) {
    free(acc->squares);
    free(acc->counts);
    free(acc);
}

// Adds the squares of the column's non-NULL values to their groups.
static bool add_rows(accumulator_t *acc, const udaf_list_u32_t *ids, uint32_t total,
                     const exports_laminar_udaf_aggregate_list_column_t *args,
                     udaf_string_t *err) {
    if (args->len != 1 || args->ptr[0].data.tag != EXPORTS_LAMINAR_UDAF_AGGREGATE_COLUMN_DATA_FLOAT64) {
        return fail(err, "l2norm expects exactly one DOUBLE argument");
    }
    const exports_laminar_udaf_aggregate_column_t *column = &args->ptr[0];
    const udaf_list_f64_t *values = &column->data.val.float64;
    if (values->len != ids->len) {
        return fail(err, "l2norm: the column has another length than the group ids");
    }
    if (column->validity.is_some && column->validity.val.len * 8 < ids->len) {
        return fail(err, "l2norm: the validity bitmap is too short");
    }
    if (!grow(acc, total)) {
        return fail(err, "l2norm: out of memory");
    }
    for (size_t row = 0; row < ids->len; row++) {
        uint32_t group = ids->ptr[row];
        if (group >= acc->groups) {
            return fail(err, "l2norm: a group id is not below total-groups");
        }
        bool valid = !column->validity.is_some ||
                     (column->validity.val.ptr[row / 8] >> (row % 8)) & 1;
        if (valid) {
            double x = values->ptr[row];
            acc->squares[group] += x * x;
            acc->counts[group] += 1;
        }
    }
    return true;
}

bool exports_laminar_udaf_aggregate_method_accumulator_update(
    accumulator_t *acc, udaf_list_u32_t *group_ids, uint32_t total_groups,
    exports_laminar_udaf_aggregate_list_column_t *args, udaf_string_t *err) {
    bool ok = add_rows(acc, group_ids, total_groups, args, err);
    udaf_list_u32_free(group_ids);
    exports_laminar_udaf_aggregate_list_column_free(args);
    return ok;
}

bool exports_laminar_udaf_aggregate_method_accumulator_evaluate(
    accumulator_t *acc, udaf_list_u32_t *group_ids,
    exports_laminar_udaf_aggregate_column_t *ret, udaf_string_t *err) {
    size_t n = group_ids->len;
    double *values = malloc(n * sizeof(double) + 1);
    uint8_t *validity = calloc(n / 8 + 1, 1);
    if (values == NULL || validity == NULL) {
        free(values);
        free(validity);
        udaf_list_u32_free(group_ids);
        return fail(err, "l2norm: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t group = group_ids->ptr[i];
        bool known = group < acc->groups;
        values[i] = 0.0;
        if (known && acc->counts[group] > 0) {
            values[i] = __builtin_sqrt(acc->squares[group]);
            validity[i / 8] |= (uint8_t)(1u << (i % 8));
        }
        if (known) {
            // Evaluated groups are reset: the host may reuse the id.
            acc->squares[group] = 0.0;
            acc->counts[group] = 0;
        }
    }
    udaf_list_u32_free(group_ids);
    ret->data.tag = EXPORTS_LAMINAR_UDAF_AGGREGATE_COLUMN_DATA_FLOAT64;
    ret->data.val.float64.ptr = values;
    ret->data.val.float64.len = n;
    ret->validity.is_some = true;
    ret->validity.val.ptr = validity;
    ret->validity.val.len = n / 8 + 1;
    return true;
}

bool exports_laminar_udaf_aggregate_method_accumulator_state(
    accumulator_t *acc, udaf_list_u32_t *group_ids,
    exports_laminar_udaf_aggregate_var_binary_t *ret, udaf_string_t *err) {
    size_t n = group_ids->len;
    uint32_t *offsets = malloc((n + 1) * sizeof(uint32_t));
    uint8_t *data = malloc(n * STATE_BYTES + 1);
    if (offsets == NULL || data == NULL) {
        free(offsets);
        free(data);
        udaf_list_u32_free(group_ids);
        return fail(err, "l2norm: out of memory");
    }
    offsets[0] = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t group = group_ids->ptr[i];
        double squares = group < acc->groups ? acc->squares[group] : 0.0;
        uint64_t count = group < acc->groups ? acc->counts[group] : 0;
        memcpy(data + i * STATE_BYTES, &squares, 8);
        memcpy(data + i * STATE_BYTES + 8, &count, 8);
        offsets[i + 1] = (uint32_t)((i + 1) * STATE_BYTES);
    }
    udaf_list_u32_free(group_ids);
    ret->offsets.ptr = offsets;
    ret->offsets.len = n + 1;
    ret->data.ptr = data;
    ret->data.len = n * STATE_BYTES;
    return true;
}

// Adds the states (16 bytes each; empty for a group whose state is NULL) to their groups.
static bool merge_states(accumulator_t *acc, const udaf_list_u32_t *ids, uint32_t total,
                         const exports_laminar_udaf_aggregate_var_binary_t *states,
                         udaf_string_t *err) {
    if (states->offsets.len != ids->len + 1) {
        return fail(err, "l2norm: one state per group id expected");
    }
    if (!grow(acc, total)) {
        return fail(err, "l2norm: out of memory");
    }
    for (size_t i = 0; i < ids->len; i++) {
        uint32_t start = states->offsets.ptr[i], end = states->offsets.ptr[i + 1];
        uint32_t group = ids->ptr[i];
        if (end < start || end > states->data.len || group >= acc->groups) {
            return fail(err, "l2norm: malformed states");
        }
        if (end == start) {
            continue;
        }
        if (end - start != STATE_BYTES) {
            return fail(err, "l2norm: a state is not 16 bytes");
        }
        double squares;
        uint64_t count;
        memcpy(&squares, states->data.ptr + start, 8);
        memcpy(&count, states->data.ptr + start + 8, 8);
        acc->squares[group] += squares;
        acc->counts[group] += count;
    }
    return true;
}

bool exports_laminar_udaf_aggregate_method_accumulator_merge(
    accumulator_t *acc, udaf_list_u32_t *group_ids, uint32_t total_groups,
    exports_laminar_udaf_aggregate_var_binary_t *states, udaf_string_t *err) {
    bool ok = merge_states(acc, group_ids, total_groups, states, err);
    udaf_list_u32_free(group_ids);
    exports_laminar_udaf_aggregate_var_binary_free(states);
    return ok;
}
