/*
 * Hello world: prints what the chip is, then restarts after a countdown.
 */
#include <inttypes.h>
#include <stdio.h>
#include "esp_chip_info.h"
#include "esp_flash.h"
#include "esp_system.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"

#define RESTART_DELAY_S 10

static void print_chip_info(void)
{
    esp_chip_info_t chip;
    uint32_t flash_bytes = 0;

    esp_chip_info(&chip);
    printf("This is %s chip with %d CPU core(s), %s%s%s%s, ", CONFIG_IDF_TARGET, chip.cores,
           (chip.features & CHIP_FEATURE_WIFI_BGN) ? "WiFi/" : "",
           (chip.features & CHIP_FEATURE_BT) ? "BT" : "",
           (chip.features & CHIP_FEATURE_BLE) ? "BLE" : "",
           (chip.features & CHIP_FEATURE_IEEE802154) ? ", 802.15.4 (Zigbee/Thread)" : "");
    printf("silicon revision v%d.%d, ", chip.revision / 100, chip.revision % 100);

    if (esp_flash_get_size(NULL, &flash_bytes) != ESP_OK) {
        printf("could not read the flash size\n");
        return;
    }
    printf("%" PRIu32 "MB %s flash\n", flash_bytes / (uint32_t)(1024 * 1024),
           (chip.features & CHIP_FEATURE_EMB_FLASH) ? "embedded" : "external");
    printf("Minimum free heap size: %" PRIu32 " bytes\n", esp_get_minimum_free_heap_size());
}

void app_main(void)
{
    printf("Hello world!\n");
    print_chip_info();

    for (int left = RESTART_DELAY_S; left > 0; left--) {
        printf("Restarting in %d seconds...\n", left);
        vTaskDelay(1000 / portTICK_PERIOD_MS);
    }
    printf("Restarting now.\n");
    fflush(stdout);
    esp_restart();
}
