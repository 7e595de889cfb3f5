/* ESP-IDF stand-in: host implementation of the system API. */
#include <stdio.h>
#include <stdlib.h>
#include "esp_system.h"

void esp_restart(void)
{
    fflush(stdout);
    exit(0);
}

esp_reset_reason_t esp_reset_reason(void)
{
    return ESP_RST_POWERON;
}

uint32_t esp_get_free_heap_size(void)
{
    return 300 * 1024;
}

uint32_t esp_get_minimum_free_heap_size(void)
{
    return 280 * 1024;
}
