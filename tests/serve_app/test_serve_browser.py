"""The web app in a real browser: headless Chromium (Debian's chromium and chromedriver) driven by
Selenium, as a person uses it — make a dataset from a folder of images, start a job, watch its
chart gain points while it trains, classify an image, find the job in the comparison table — and
bad input shown on the page. With NVCAFFE_SCREENSHOTS=DIR, a screenshot of each page goes to DIR
(docs/images/ holds the README's). Skipped, with the reason, where Chromium or Selenium is absent."""
import base64
import os
import shutil
import tempfile
import threading
import time

import pytest

from .helpers import CLASSES, NEEDS_SERVE, make_image_folder

pytest.importorskip("flask", reason=NEEDS_SERVE)
from nvcaffe_py.serve.app import app_shutdown, create_app  # noqa: E402

webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium: pip install -e '.[test]'")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="the browser tests need Chromium and ChromeDriver: apt-get install chromium "
                                       "chromium-driver")
WIDTH = 1400


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(address, root folder) of a live server whose root holds images/ and the jobs folder."""
    root = tmp_path_factory.mktemp("site")
    make_image_folder(str(root / "images"), per_class=16)
    (root / "images" / "not-images" / "README").mkdir(parents=True)
    app = create_app(str(root / "jobs"), str(root))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}", root
    server.shutdown()
    app_shutdown(app)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", f"--window-size={WIDTH},1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(driver, condition, timeout=120, message=""):  # generous: CI machines are shared
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d), message)


def screenshot(driver, name):
    """The whole page as DIR/name.png where NVCAFFE_SCREENSHOTS=DIR is set (through Chromium's
    DevTools: the part below the window too)."""
    folder = os.environ.get("NVCAFFE_SCREENSHOTS")
    if not folder:
        return
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 2400), "scale": 1}})
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{name}.png"), "wb") as f:
        f.write(base64.b64decode(shot["data"]))


def fill(driver, form, **fields):
    for name, value in fields.items():
        field = driver.find_element(By.CSS_SELECTOR, f"{form} [name={name}]")
        if field.tag_name == "select":
            Select(field).select_by_value(str(value))
        else:
            field.clear()
            field.send_keys(str(value))


def banner(driver):
    return driver.find_element(By.ID, "error")


def chart_points(driver):
    return driver.execute_script("const c = Chart.getChart(document.getElementById('metrics-chart'));"
                                 "return c.data.datasets.reduce((n, d) => n + d.data.length, 0);")


def test_a_person_makes_a_dataset_trains_tests_and_compares(site, browser):
    address, root = site
    browser.get(f"{address}/datasets/new")
    fill(browser, "#dataset-form", name="digits", folder="images/", width=28, height=28, color="gray")
    screenshot(browser, "dataset-new")
    browser.find_element(By.CSS_SELECTOR, "#dataset-form button[type=submit]").click()
    wait(browser, lambda d: "/datasets/" in d.current_url and "new" not in d.current_url)
    wait(browser, lambda d: "done" in d.find_element(By.ID, "dataset-status").text, message="the dataset builds")
    thumbnails = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".thumbnails img"))
    assert len(thumbnails) == 36  # 16 images of each of 3 classes, 75% for training
    screenshot(browser, "dataset")
    dataset_id = browser.current_url.rsplit("/", 1)[1]

    browser.get(f"{address}/jobs/new")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#job-dataset option"))
    fill(browser, "#job-form", name="lenet digits", network="lenet", batch_size=8, epochs="", iterations=400,
         snapshot_interval=100, test_interval=50)
    screenshot(browser, "job-new")
    browser.find_element(By.CSS_SELECTOR, "#job-form button[type=submit]").click()
    wait(browser, lambda d: "/jobs/" in d.current_url and "new" not in d.current_url)
    job_id = browser.current_url.rsplit("/", 1)[1]
    seen = []  # the chart's point count, sampled while the job runs
    deadline = time.monotonic() + 300
    while "done" not in browser.find_element(By.ID, "job-status").text:
        assert time.monotonic() < deadline, "the job did not finish in 5 minutes"
        if "running" in browser.find_element(By.ID, "job-status").text:
            seen.append(chart_points(browser))
        assert "failed" not in browser.find_element(By.ID, "job-status").text, browser.find_element(By.ID, "job-message").text
        time.sleep(0.25)
    assert len({n for n in seen if n}) >= 2 and seen == sorted(seen), f"the chart gains points while it runs: {seen}"
    assert chart_points(browser) >= max(seen)  # done: every row (the last ones may have come while it still ran)
    screenshot(browser, "job")
    Select(browser.find_element(By.ID, "x-axis")).select_by_value("epoch")
    last_x = browser.execute_script("return Chart.getChart(document.getElementById('metrics-chart'))"
                                    ".data.datasets[0].data.at(-1).x")
    assert last_x == pytest.approx(396 / 5, abs=1e-3)  # the last logged (every 4th) iteration; 5 batches of 8 an epoch
    browser.find_element(By.ID, "clone").click()  # a second job to compare with: same net, other initial weights
    wait(browser, lambda d: d.current_url.rsplit("/", 1)[1] not in (job_id, "new"))
    wait(browser, lambda d: "done" in d.find_element(By.ID, "job-status").text, message="the clone trains")

    image = str(root / "images" / CLASSES[1] / "3.png")
    browser.get(f"{address}/jobs/{job_id}/test")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#snapshot option"))
    browser.find_element(By.CSS_SELECTOR, "#classify-form input[type=file]").send_keys(image)
    browser.find_element(By.CSS_SELECTOR, "#classify-form button").click()
    rows = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".classification tr"))
    assert len(rows) == 3 and rows[0].text.split()[0] in CLASSES and "%" in rows[0].text
    browser.find_element(By.ID, "evaluate").click()
    wait(browser, lambda d: "accuracy" in d.find_element(By.ID, "evaluation-summary").text)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#confusion tr")) == 4  # a header and a row per class
    screenshot(browser, "test")

    browser.get(f"{address}/jobs/{job_id}/inside")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#weights .blob")) == 8)  # 4 layers' weights, biases
    browser.find_element(By.CSS_SELECTOR, "#activations-form input[type=file]").send_keys(image)
    browser.find_element(By.CSS_SELECTOR, "#activations-form button").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#activations .blob"))
    screenshot(browser, "inside")

    browser.get(f"{address}/compare")
    row = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"#comparison tr[data-job='{job_id}']"))[0]
    assert "lenet digits" in row.text and "digits" in row.text
    assert row.find_element(By.CSS_SELECTOR, ".accuracy").text not in ("", "–")
    browser.find_element(By.CSS_SELECTOR, "th[data-sort=accuracy]").click()
    wait(browser, lambda d: "sorted" in d.find_element(By.CSS_SELECTOR, "th[data-sort=accuracy]").get_attribute("class"))
    accuracies = [float(cell.text) for cell in browser.find_elements(By.CSS_SELECTOR, "#comparison td.accuracy")]
    assert len(accuracies) == 2 and accuracies == sorted(accuracies)
    screenshot(browser, "compare")

    browser.get(f"{address}/")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"#jobs a[href='/jobs/{job_id}']"))
    screenshot(browser, "home")
    browser.get(f"{address}/explore?path=jobs/datasets/{dataset_id}/val_lmdb")
    assert len(wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".thumbnails img"))) == 12
    screenshot(browser, "explore")


def test_bad_input_is_shown_on_the_page(site, browser):
    address, _ = site
    browser.get(f"{address}/datasets/new")
    fill(browser, "#dataset-form", folder="images/not-images")
    browser.find_element(By.CSS_SELECTOR, "#dataset-form button[type=submit]").click()
    wait(browser, lambda d: banner(d).is_displayed())
    assert "no images found in" in banner(browser).text and browser.current_url.endswith("/datasets/new")
    browser.get(f"{address}/jobs/new")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#job-network option"))
    fill(browser, "#job-form", network="custom", custom_network="layer { name: ")
    browser.find_element(By.CSS_SELECTOR, "#job-form button[type=submit]").click()
    wait(browser, lambda d: banner(d).is_displayed())
    assert banner(browser).text.startswith("the custom network:1:")
    browser.get(f"{address}/jobs/20990101-000000-abcd")
    assert "no job '20990101-000000-abcd'" in banner(browser).text and "Traceback" not in browser.page_source
