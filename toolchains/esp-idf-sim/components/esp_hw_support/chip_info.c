/* ESP-IDF stand-in: chip information for the configured target. */
#include "esp_chip_info.h"
#include "sdkconfig.h"

void esp_chip_info(esp_chip_info_t *out_info)
{
    esp_chip_info_t info = {.model = CHIP_POSIX_LINUX, .features = 0, .revision = 0, .cores = 1};
#if defined(CONFIG_IDF_TARGET_ESP32)
    info = (esp_chip_info_t){CHIP_ESP32, CHIP_FEATURE_WIFI_BGN | CHIP_FEATURE_BT | CHIP_FEATURE_BLE, 301, 2};
#elif defined(CONFIG_IDF_TARGET_ESP32S2)
    info = (esp_chip_info_t){CHIP_ESP32S2, CHIP_FEATURE_WIFI_BGN, 100, 1};
#elif defined(CONFIG_IDF_TARGET_ESP32S3)
    info = (esp_chip_info_t){CHIP_ESP32S3, CHIP_FEATURE_WIFI_BGN | CHIP_FEATURE_BLE, 2, 2};
#elif defined(CONFIG_IDF_TARGET_ESP32C3)
    info = (esp_chip_info_t){CHIP_ESP32C3, CHIP_FEATURE_WIFI_BGN | CHIP_FEATURE_BLE, 4, 1};
#elif defined(CONFIG_IDF_TARGET_ESP32C2)
    info = (esp_chip_info_t){CHIP_ESP32C2, CHIP_FEATURE_WIFI_BGN | CHIP_FEATURE_BLE, 102, 1};
#elif defined(CONFIG_IDF_TARGET_ESP32C6)
    info = (esp_chip_info_t){CHIP_ESP32C6, CHIP_FEATURE_WIFI_BGN | CHIP_FEATURE_BLE | CHIP_FEATURE_IEEE802154, 0, 1};
#elif defined(CONFIG_IDF_TARGET_ESP32H2)
    info = (esp_chip_info_t){CHIP_ESP32H2, CHIP_FEATURE_BLE | CHIP_FEATURE_IEEE802154, 1, 1};
#elif defined(CONFIG_IDF_TARGET_ESP32P4)
    info = (esp_chip_info_t){CHIP_ESP32P4, 0, 1, 2};
#elif defined(CONFIG_IDF_TARGET_ESP32C5)
    info = (esp_chip_info_t){CHIP_ESP32C5, CHIP_FEATURE_WIFI_BGN | CHIP_FEATURE_BLE | CHIP_FEATURE_IEEE802154, 0, 1};
#elif defined(CONFIG_IDF_TARGET_ESP32C61)
    info = (esp_chip_info_t){CHIP_ESP32C61, CHIP_FEATURE_WIFI_BGN | CHIP_FEATURE_BLE, 0, 1};
#endif
    *out_info = info;
}
