/* ESP-IDF stand-in: logging macros (ESP_LOGx -> printf, filtered by CONFIG_LOG_MAXIMUM_LEVEL). */
#pragma once
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include "sdkconfig.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ESP_LOG_NONE,
    ESP_LOG_ERROR,
    ESP_LOG_WARN,
    ESP_LOG_INFO,
    ESP_LOG_DEBUG,
    ESP_LOG_VERBOSE,
} esp_log_level_t;

uint32_t esp_log_timestamp(void);
void esp_log_level_set(const char *tag, esp_log_level_t level);

#ifndef CONFIG_LOG_MAXIMUM_LEVEL
#define CONFIG_LOG_MAXIMUM_LEVEL 3
#endif

#define ESP_LOG_LEVEL_LOCAL_(letter, level, tag, format, ...)                                  \
    do {                                                                                       \
        if ((level) <= CONFIG_LOG_MAXIMUM_LEVEL) {                                             \
            printf(letter " (%" PRIu32 ") %s: " format "\n", esp_log_timestamp(), tag,         \
                   ##__VA_ARGS__);                                                             \
        }                                                                                      \
    } while (0)

#define ESP_LOGE(tag, format, ...) ESP_LOG_LEVEL_LOCAL_("E", ESP_LOG_ERROR, tag, format, ##__VA_ARGS__)
#define ESP_LOGW(tag, format, ...) ESP_LOG_LEVEL_LOCAL_("W", ESP_LOG_WARN, tag, format, ##__VA_ARGS__)
#define ESP_LOGI(tag, format, ...) ESP_LOG_LEVEL_LOCAL_("I", ESP_LOG_INFO, tag, format, ##__VA_ARGS__)
#define ESP_LOGD(tag, format, ...) ESP_LOG_LEVEL_LOCAL_("D", ESP_LOG_DEBUG, tag, format, ##__VA_ARGS__)
#define ESP_LOGV(tag, format, ...) ESP_LOG_LEVEL_LOCAL_("V", ESP_LOG_VERBOSE, tag, format, ##__VA_ARGS__)

#ifdef __cplusplus
}
#endif
