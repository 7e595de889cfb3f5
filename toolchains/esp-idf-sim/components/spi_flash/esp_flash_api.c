/* ESP-IDF stand-in: the flash size is the configured one. */
#include <string.h>
#include "esp_flash.h"
#include "sdkconfig.h"

esp_flash_t *esp_flash_default_chip;

esp_err_t esp_flash_get_size(esp_flash_t *chip, uint32_t *out_size)
{
    (void)chip;
    if (out_size == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    const char *size = CONFIG_ESPTOOLPY_FLASHSIZE;
    uint32_t mb = 0;
    for (const char *p = size; *p >= '0' && *p <= '9'; p++) {
        mb = mb * 10 + (uint32_t)(*p - '0');
    }
    *out_size = mb * 1024 * 1024;
    return ESP_OK;
}
